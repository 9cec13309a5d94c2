"""Every architecture of segmentation-models-pytorch, built from scratch, returning logits; clear errors."""

from __future__ import annotations

import pytest
import torch

from aerialseg.errors import InputError
from aerialseg.nets import ARCHITECTURES, build_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", [a for a in ARCHITECTURES if a != "dpt"])  # dpt needs a ViT encoder
def test_each_architecture_builds_and_returns_logits(name):
    arch = {"name": name, "encoder": "resnet18", "encoder_depth": 5, "in_channels": 3, "classes": 3}
    if name in ("unet", "unetplusplus", "manet"):
        arch["decoder_channels"] = [64, 32, 16, 16, 8]
    side = 256 if name == "pan" else 64  # PAN's pyramid pooling needs a feature map of a few pixels at 1/32
    net = build_model(arch).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, side, side))
    assert out.shape == (1, 3, side, side)


def test_unknown_architecture_or_encoder_is_one_line_listing_the_valid_names():
    with pytest.raises(InputError, match=r"unknown architecture 'fcn'; choose one of unet, unetplusplus, .*segformer"):
        build_model({"name": "fcn", "encoder": "resnet18", "classes": 3})
    with pytest.raises(InputError, match=r"unknown encoder 'resnet19'; choose one of resnet18, .* or tu-"):
        build_model({"name": "fpn", "encoder": "resnet19", "classes": 3})
