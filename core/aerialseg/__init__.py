"""AerialSeg: land-cover mapping from aerial and satellite imagery.

The public verbs are :func:`classify` (orthophoto -> class raster) and :func:`vectorize`
(class raster -> GeoPackage of polygons); :func:`load_model` and :class:`ModelCard` describe models.
"""

from aerialseg.card import ClassInfo, ModelCard, read_card
from aerialseg.errors import AerialSegError, Cancelled, InputError, ModelError, OutputError, RasterError

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: keep `import aerialseg` light (no onnxruntime until needed)
    if name == "classify":
        from aerialseg.predict import classify

        return classify
    if name == "vectorize":  # the module has the function's name: bind the function, not the module
        from aerialseg.vectorize import vectorize

        globals()["vectorize"] = vectorize
        return vectorize
    if name == "load_model":
        from aerialseg.runtime import load_model

        return load_model
    raise AttributeError(name)


__all__ = [
    "AerialSegError", "Cancelled", "ClassInfo", "InputError", "ModelCard", "ModelError", "OutputError",
    "RasterError", "classify", "load_model", "read_card", "vectorize",
]
