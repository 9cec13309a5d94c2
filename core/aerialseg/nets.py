"""Networks and checkpoints: the model factory on segmentation-models-pytorch and safe checkpoint files.

A checkpoint is a ``torch.save`` of plain data only: a dict of tensors, numbers, strings, lists and
dicts (``arch``, ``card``, ``state_dict``, and the training state of a run). It is always read with
``torch.load(weights_only=True)``, so a ``.pt`` file someone hands over can never run code: a file that
holds any other Python object is refused with one line. Training and checkpoint inference share this
module, so running a checkpoint does not import the trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from aerialseg.errors import InputError, ModelError, OutputError

# Every architecture of segmentation-models-pytorch 0.5+ (smp.create_model's names).
ARCHITECTURES = ("unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "pan",
                 "upernet", "segformer", "dpt")
DECODER_CHANNEL_ARCHITECTURES = ("unet", "unetplusplus", "manet")  # decoders with configurable widths
CHECKPOINT_FORMAT = 2  # 2: plain data only (read with weights_only=True); files without the key are read alike


def build_model(arch: dict[str, Any]) -> nn.Module:
    """Rebuild a network (returning logits) from a checkpoint's ``arch`` dict (no pretrained weights).

    ``arch`` keys: ``name`` (one of :data:`ARCHITECTURES`), ``encoder`` (an smp encoder, or ``tu-<timm
    model>``), ``encoder_depth``, ``in_channels``, ``classes`` and, for UNet, UNet++ and MAnet,
    ``decoder_channels``. Encoder stages deeper than ``encoder_depth`` are removed so they do not bloat the
    model file.
    """
    import segmentation_models_pytorch as smp

    name, depth = str(arch["name"]).lower(), int(arch.get("encoder_depth", 5))
    check_architecture(name, str(arch["encoder"]))
    options: dict[str, Any] = {
        "encoder_name": arch["encoder"],
        "encoder_weights": None,
        "in_channels": int(arch.get("in_channels", 3)),
        "classes": int(arch["classes"]),
        "encoder_depth": depth,
    }
    if name in DECODER_CHANNEL_ARCHITECTURES and "decoder_channels" in arch:
        options["decoder_channels"] = list(arch["decoder_channels"])
    if name == "pspnet":  # its head upsamples by a fixed factor: make it the encoder's, so logits match the input
        options["upsampling"] = 2**depth
    try:
        model = smp.create_model(name, **options)
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise InputError(f"cannot build {name} with encoder {arch.get('encoder')!r} and depth {depth}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for i in range(depth, 5):  # ResNet-style encoders keep unused stages: drop them
        if hasattr(model.encoder, f"layer{i}"):
            delattr(model.encoder, f"layer{i}")
    return model


def check_architecture(name: str, encoder: str) -> None:
    """One-line InputErrors for an architecture or encoder that segmentation-models-pytorch does not have."""
    import segmentation_models_pytorch as smp

    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders and not encoder.startswith("tu-"):
        raise InputError(f"unknown encoder {encoder!r}; choose one of {', '.join(encoders)}, or tu-<any timm model>")


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint of plain data atomically (a crash never leaves a truncated file)."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save({**checkpoint, "format": CHECKPOINT_FORMAT}, tmp)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint on the CPU without running any code it may hold; one-line ModelError otherwise."""
    import pickle

    path = Path(path)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(
            f"{path} holds Python objects besides tensors, numbers and text; refused, since loading it could run "
            "code (only AerialSeg checkpoints or ONNX models can be used)"
        ) from None
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        raise ModelError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or not {"arch", "card", "state_dict"} <= ckpt.keys():
        raise ModelError(f"{path} is not an AerialSeg training checkpoint (no arch, card or state_dict)")
    if int(ckpt.get("format", CHECKPOINT_FORMAT)) > CHECKPOINT_FORMAT:
        raise ModelError(f"{path} was written by a newer AerialSeg (checkpoint format {ckpt['format']}); update")
    return ckpt
