"""aerialseg:map: classify and vectorise in one step (OUTPUT_RASTER, OUTPUT_VECTOR)."""

from qgis.core import (
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from .base import AerialSegAlgorithm, tr
from .layers import (
    RASTER_EXTENSIONS,
    input_name,
    load_gpkg_layers,
    move_raster_outputs,
    new_stack,
    remove_raster_outputs,
    staged_raster,
    style_raster_on_load,
)

CLASSIFY_SHARE = 85.0  # percent of the progress bar for classify; vectorize takes the rest


class MapAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, ICON = "map", "Map land cover (classify and vectorise)", "map.svg"
    HELP = ("Classify land cover and Vectorise classes in one step: an orthophoto in, a styled class raster "
            "and a GeoPackage of building, road and water polygons (or the classes you choose) out.\n\n"
            "If the run fails or is cancelled, neither output is left behind.")

    def initAlgorithm(self, config=None):
        self.add_model_parameters()
        self.add_vector_parameters()
        self.add(QgsProcessingParameterRasterDestination("OUTPUT_RASTER", tr("Land-cover classes")),
                 "The class raster to write (GeoTIFF, .tif).")
        self.add(QgsProcessingParameterVectorDestination("OUTPUT_VECTOR", tr("Polygons")),
                 "The GeoPackage (.gpkg) to write, one polygon layer per class.")

    def processAlgorithm(self, parameters, context, feedback):
        source = self.input_raster(parameters, "INPUT", context, feedback, extent_param="EXTENT")
        raster = self.output_path(parameters, "OUTPUT_RASTER", context, RASTER_EXTENSIONS)
        gpkg = self.output_path(parameters, "OUTPUT_VECTOR", context, (".gpkg",))
        # bad values fail before the long part; INPUT_GSD: areas in m² on an image without georeferencing
        vector_args = self.vector_args(parameters, context) + self.gsd_args(parameters, context)
        staged = staged_raster(raster)  # the old raster stays until the new polygons are written too
        self.engine(["classify", source, staged, *self.model_args(parameters, context), "--overwrite"], feedback,
                    (0.0, CLASSIFY_SHARE))
        try:
            self.engine(["vectorize", staged, gpkg, *vector_args, "--overwrite"], feedback, (CLASSIFY_SHARE, 100.0))
        except BaseException:
            remove_raster_outputs(staged)
            raise
        move_raster_outputs(staged, raster)
        name, stack = input_name(self.parameterAsRasterLayer(parameters, "INPUT", context)), new_stack()
        style_raster_on_load(context, raster, f"{name} land cover", stack)
        feedback.pushInfo(tr("Layers: ") + ", ".join(load_gpkg_layers(context, gpkg, name, stack)))
        self.polygons = gpkg
        return {"OUTPUT_RASTER": raster, "OUTPUT_VECTOR": gpkg}
