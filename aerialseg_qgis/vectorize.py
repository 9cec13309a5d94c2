"""aerialseg:vectorize: a class raster -> a GeoPackage of polygons, one styled layer per class."""

from qgis.core import QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorDestination

from .base import AerialSegAlgorithm, tr
from .layers import input_name, load_gpkg_layers


class VectorizeAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, ICON = "vectorize", "Vectorise classes (buildings, roads, water)", "vectorize.svg"
    HELP = ("Turns a class raster written by Classify land cover into clean polygons: one GeoPackage layer per "
            "class (fields class_id, class_name, area_m2; area_px without georeferencing), merged across block "
            "seams, small polygons dropped, outlines simplified in ground metres and, optionally, buildings "
            "squared.\n\n"
            "Every class layer opens styled in the class colour (styles stored in the GeoPackage).")

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer("INPUT", tr("Class raster")),
                 "A land-cover class raster written by AerialSeg (1 band of class ids with a class table).")
        self.add_vector_parameters("Automatic: no (a class raster does not say its model's resolution)",
                                   "automatic, which here means no: a class raster names its model but not the "
                                   "resolution it worked at, so choose yes for buildings of a fine model (Map land "
                                   "cover decides this itself)")
        self.add_gsd_parameter("The ground size of a pixel of a class raster without georeferencing (the Input "
                               "pixel size it was classified with): areas and tolerances in metres, not pixels. "
                               "Ignored for georeferenced rasters.")
        self.add(QgsProcessingParameterVectorDestination("OUTPUT", tr("Polygons")),
                 "The GeoPackage (.gpkg) to write, one polygon layer per class.")

    def processAlgorithm(self, parameters, context, feedback):
        source = self.input_raster(parameters, "INPUT", context, feedback)
        output = self.output_path(parameters, "OUTPUT", context, (".gpkg",))
        prefix = input_name(self.parameterAsRasterLayer(parameters, "INPUT", context))
        args = [*self.vector_args(parameters, context), *self.gsd_args(parameters, context), "--overwrite"]
        self.engine(["vectorize", source, output, *args], feedback)
        feedback.pushInfo(tr("Layers: ") + ", ".join(load_gpkg_layers(context, output, prefix)))
        self.polygons = output
        return {"OUTPUT": output}
