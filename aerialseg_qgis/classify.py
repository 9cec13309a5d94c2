"""aerialseg:classify: an orthophoto -> a styled land-cover class raster (and a confidence raster)."""

from qgis.core import QgsProcessingParameterRasterDestination

from .base import AerialSegAlgorithm, tr
from .layers import RASTER_EXTENSIONS, input_name, style_raster_on_load


class ClassifyAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, ICON = "classify", "Classify land cover", "classify.svg"
    HELP = ("Classifies an orthophoto into land-cover classes with a segmentation model, tile by tile with "
            "smoothly blended overlaps, on the GPU when one works.\n\n"
            "The class raster is a GeoTIFF on the input's grid (CRS, extent, pixel size; or the processing "
            "extent's part of it) with one class id per pixel, 255 where the input has no data. It opens "
            "coloured and labelled with the model's class names and colours (a .qml style next to it).")

    def initAlgorithm(self, config=None):
        self.add_model_parameters()
        self.add(QgsProcessingParameterRasterDestination("OUTPUT", tr("Land-cover classes")),
                 "The class raster to write (GeoTIFF, .tif).")
        self.add(QgsProcessingParameterRasterDestination("OUTPUT_CONFIDENCE", tr("Confidence"), optional=True,
                                                         createByDefault=False),
                 "Optional: a raster of the model's confidence in each pixel's class, 0-100 %.")

    def processAlgorithm(self, parameters, context, feedback):
        source = self.input_raster(parameters, "INPUT", context, feedback, extent_param="EXTENT")
        output = self.output_path(parameters, "OUTPUT", context, RASTER_EXTENSIONS)
        confidence = self.output_path(parameters, "OUTPUT_CONFIDENCE", context, RASTER_EXTENSIONS)
        args = ["classify", source, output, *self.model_args(parameters, context), "--overwrite"]
        self.engine(args + (["--confidence", confidence] if confidence else []), feedback)
        name = input_name(self.parameterAsRasterLayer(parameters, "INPUT", context))
        style_raster_on_load(context, output, f"{name} land cover")
        style_raster_on_load(context, confidence, f"{name} confidence")
        return {"OUTPUT": output, "OUTPUT_CONFIDENCE": confidence or None}
