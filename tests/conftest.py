"""Shared fixtures: tiny real GeoTIFFs and tiny real ONNX models, made per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from rasters import scene, write_raster
from tinymodels import colour_card, write_colour_model


@pytest.fixture(scope="session")
def colour_model(tmp_path_factory) -> Path:
    """Pointwise colour classifier (exactly translation-equivariant), tile 64, overlap 16."""
    return write_colour_model(tmp_path_factory.mktemp("models") / "colour.onnx")


@pytest.fixture(scope="session")
def conv_model(tmp_path_factory) -> Path:
    """3x3-conv colour classifier: sees its neighbours and zero padding at tile edges, like a CNN."""
    return write_colour_model(tmp_path_factory.mktemp("models") / "conv.onnx", kernel=3)


@pytest.fixture(scope="session")
def gsd_model(tmp_path_factory) -> Path:
    """The colour classifier trained (so its card says) at 1.0 m per pixel."""
    return write_colour_model(tmp_path_factory.mktemp("models") / "gsd1.onnx", colour_card(name="gsd1", gsd_m=1.0))


@pytest.fixture
def rgb_tif(tmp_path) -> Path:
    """A 300 x 500 px RGB uint8 GeoTIFF in UTM 33N at 0.5 m."""
    return write_raster(tmp_path / "rgb.tif", scene(300, 500))
