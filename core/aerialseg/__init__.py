"""AerialSeg: land-cover mapping from aerial and satellite imagery.

The public verbs are :func:`classify` (orthophoto -> class raster) and :func:`vectorize`
(class raster -> GeoPackage of polygons); :func:`load_model` and :class:`ModelCard` describe models.
They are imported on first use, so ``import aerialseg.card`` (or ``aerialseg --version``) does not load
GDAL, ONNX Runtime or geopandas.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from aerialseg._version import __version__

# GDAL's block cache defaults to 5% of RAM and fills with every block read and written, so a long run's
# memory would grow with the raster. Bound it (before GDAL first uses it) unless the user chose a size.
os.environ.setdefault("GDAL_CACHEMAX", "64")

_PUBLIC = {
    "AerialSegError": "aerialseg.errors",
    "Cancelled": "aerialseg.errors",
    "InputError": "aerialseg.errors",
    "ModelError": "aerialseg.errors",
    "OutputError": "aerialseg.errors",
    "RasterError": "aerialseg.errors",
    "ClassInfo": "aerialseg.card",
    "ModelCard": "aerialseg.card",
    "read_card": "aerialseg.card",
    "classify": "aerialseg.predict",
    "load_model": "aerialseg.runtime",
    "vectorize": "aerialseg.vectorize",
}

if TYPE_CHECKING:
    from aerialseg.card import ClassInfo, ModelCard, read_card
    from aerialseg.errors import AerialSegError, Cancelled, InputError, ModelError, OutputError, RasterError
    from aerialseg.predict import classify
    from aerialseg.runtime import load_model
    from aerialseg.vectorize import vectorize


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aerialseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # binds the function over the submodule of the same name (vectorize)
    return value


__all__ = [
    "AerialSegError", "Cancelled", "ClassInfo", "InputError", "ModelCard", "ModelError", "OutputError",
    "RasterError", "__version__", "classify", "load_model", "read_card", "vectorize",
]
