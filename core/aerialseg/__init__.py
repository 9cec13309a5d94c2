"""AerialSeg: land-cover mapping from aerial and satellite imagery.

The public verbs are :func:`classify` (orthophoto -> class raster) and :func:`vectorize`
(class raster -> GeoPackage of polygons); :func:`load_model` and :class:`ModelCard` describe models.
"""

from aerialseg.card import ClassInfo, ModelCard, read_card
from aerialseg.errors import AerialSegError, Cancelled, InputError, ModelError, OutputError, RasterError
from aerialseg.predict import classify
from aerialseg.runtime import load_model
from aerialseg.vectorize import vectorize  # binds the function over the submodule of the same name

__version__ = "0.1.0"


__all__ = [
    "AerialSegError", "Cancelled", "ClassInfo", "InputError", "ModelCard", "ModelError", "OutputError",
    "RasterError", "classify", "load_model", "read_card", "vectorize",
]
