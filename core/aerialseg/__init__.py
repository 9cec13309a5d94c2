"""AerialSeg: land-cover mapping from aerial and satellite imagery.

The public verbs are :func:`classify` (orthophoto -> class raster) and :func:`vectorize`
(class raster -> GeoPackage of polygons); :func:`load_model` and :class:`ModelCard` describe models.
"""

import os

# GDAL's block cache defaults to 5% of RAM and fills with every block read and written, so a long run's
# memory would grow with the raster. Bound it (before GDAL first uses it) unless the user chose a size.
os.environ.setdefault("GDAL_CACHEMAX", "64")

from aerialseg.card import ClassInfo, ModelCard, read_card  # noqa: E402
from aerialseg.errors import AerialSegError, Cancelled, InputError, ModelError, OutputError, RasterError  # noqa: E402
from aerialseg.predict import classify  # noqa: E402
from aerialseg.runtime import load_model  # noqa: E402
from aerialseg.vectorize import vectorize  # noqa: E402 - binds the function over the submodule of the same name

__version__ = "0.3.0"


__all__ = [
    "AerialSegError", "Cancelled", "ClassInfo", "InputError", "ModelCard", "ModelError", "OutputError",
    "RasterError", "classify", "load_model", "read_card", "vectorize",
]
