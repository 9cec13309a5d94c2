"""aerialseg:map: classify and vectorise in one step (OUTPUT_RASTER, OUTPUT_VECTOR)."""

from qgis.core import (
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from .base import AerialSegAlgorithm, tr
from .layers import RASTER_EXTENSIONS, input_name, load_gpkg_layers, new_stack, style_raster_on_load

CLASSIFY_SHARE = 85.0  # percent of the progress bar for classify; vectorize takes the rest


class MapAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, ICON = "map", "Map land cover (classify and vectorise)", "map.svg"
    HELP = ("Classify land cover and Vectorise classes in one step: an orthophoto in, a styled class raster "
            "and a GeoPackage of building, road and water polygons (or the classes you choose) out.\n\n"
            "If the run fails or is cancelled, neither output is left behind.")

    def initAlgorithm(self, config=None):
        self.add_model_parameters()
        self.add_vector_parameters("Automatic: when the model works at 0.5 m/px or finer",
                                   "automatic, when the model works at 0.5 m/px or finer (as the fine building "
                                   "model chosen for drone and fine aerial imagery does; the log says so)")
        self.add(QgsProcessingParameterRasterDestination("OUTPUT_RASTER", tr("Land-cover classes")),
                 "The class raster to write (GeoTIFF, .tif).")
        self.add(QgsProcessingParameterVectorDestination("OUTPUT_VECTOR", tr("Polygons")),
                 "The GeoPackage (.gpkg) to write, one polygon layer per class.")

    def processAlgorithm(self, parameters, context, feedback):
        source = self.input_raster(parameters, "INPUT", context, feedback, extent_param="EXTENT")
        raster = self.output_path(parameters, "OUTPUT_RASTER", context, RASTER_EXTENSIONS)
        gpkg = self.output_path(parameters, "OUTPUT_VECTOR", context, (".gpkg",))
        # bad values fail before the long part; INPUT_GSD (in model_args): areas in m² without georeferencing
        vector_args = self.vector_args(parameters, context)
        # one engine run; it moves both outputs into place together when both are complete (else neither)
        self.engine(["map", source, "--raster", raster, "--vector", gpkg, *self.model_args(parameters, context),
                     *vector_args, "--overwrite"], feedback,
                    stages={"classify": (0.0, CLASSIFY_SHARE), "vectorize": (CLASSIFY_SHARE, 100.0)})
        name, stack = input_name(self.parameterAsRasterLayer(parameters, "INPUT", context)), new_stack()
        style_raster_on_load(context, raster, f"{name} land cover", stack)
        feedback.pushInfo(tr("Layers: ") + ", ".join(load_gpkg_layers(context, gpkg, name, stack)))
        self.polygons = gpkg
        return {"OUTPUT_RASTER": raster, "OUTPUT_VECTOR": gpkg}
