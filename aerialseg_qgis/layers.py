"""Layers in and out: raster layers as files the engine can read, outputs that open styled in QGIS."""

import math
import re
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsLayerTree,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
    QgsVectorLayer,
)

RASTER_EXTENSIONS = (".tif", ".tiff")
RASTER_OPACITY = 0.6  # a map's class raster under its polygons: readable, and the polygons stand out


def raster_source(layer: QgsRasterLayer, rect, context: QgsProcessingContext, feedback) -> str:
    """A GDAL dataset name the engine can read for ``layer``, clipped to ``rect`` (layer CRS) unless None.

    GDAL layers are passed as they are (or as a VRT carrying their open options); layers of other
    providers with a pixel grid (virtual rasters, PostGIS rasters, ...) are exported to a temporary
    GeoTIFF; web map and tile layers (WMS, WMTS, XYZ, ArcGIS MapServer) have no grid and are refused.
    """
    if layer.providerType() != "gdal":
        return _export_layer(layer, rect, context, feedback)
    source = _gdal_name(layer)
    return _clip(source, layer, rect, feedback) if rect is not None else source


def output_error(path: str, extensions: tuple) -> str:
    """Why AerialSeg cannot write ``path`` ('' if it can): a plain file with one of ``extensions``."""
    kind = "a GeoTIFF (.tif)" if extensions == RASTER_EXTENSIONS else "a GeoPackage (.gpkg), one layer per class"
    if "|" in path or re.match(r"^[A-Za-z][\w+-]+:", path):  # a provider URI (memory:, ogr:, postgres:), not a file
        return f"AerialSeg writes {kind} to a file; choose a file name instead of '{path}'."
    if Path(path).suffix.lower() not in extensions:
        return f"AerialSeg writes {kind}; choose a file name ending in {extensions[0]} instead of '{path}'."
    return ""


def _label(layer: QgsRasterLayer) -> str:
    """A layer's name for messages (layers opened from a URI in qgis_process have none)."""
    return f"layer '{layer.name()}'" if layer.name() else f"layer {layer.source()[:120]}"


def _gdal_name(layer: QgsRasterLayer) -> str:
    """The GDAL dataset name of a GDAL-provider layer (a VRT when the layer has GDAL open options)."""
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    options = parts.get("openOptions") or []
    name = layer.source().split("|", 1)[0]
    if not options:
        return name
    from osgeo import gdal

    vrt = QgsProcessingUtils.generateTempFilename("input.vrt")
    if gdal.Translate(vrt, gdal.OpenEx(name, gdal.OF_RASTER, open_options=options), format="VRT") is None:
        raise QgsProcessingException(f"Cannot read {_label(layer)} with GDAL: {gdal.GetLastErrorMsg()}")
    return vrt


def _clip(source: str, layer: QgsRasterLayer, rect, feedback) -> str:
    """A VRT of the input pixels covering ``rect`` (in the layer's CRS), on the input's own pixel grid."""
    from osgeo import gdal

    ds = gdal.Open(source)
    if ds is None:
        raise QgsProcessingException(f"Cannot read {_label(layer)} with GDAL: {gdal.GetLastErrorMsg()}")
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None or gt[2] or gt[4]:
        raise QgsProcessingException(f"Cannot apply the processing extent: {_label(layer)} has no north-up "
                                     "georeferencing; leave the extent empty.")
    inv = gdal.InvGeoTransform(gt)
    xs, ys = zip(*(gdal.ApplyGeoTransform(inv, x, y) for x in (rect.xMinimum(), rect.xMaximum())
                   for y in (rect.yMinimum(), rect.yMaximum())))
    x0, x1 = max(0, math.floor(min(xs) + 1e-6)), min(ds.RasterXSize, math.ceil(max(xs) - 1e-6))
    y0, y1 = max(0, math.floor(min(ys) + 1e-6)), min(ds.RasterYSize, math.ceil(max(ys) - 1e-6))
    if x1 <= x0 or y1 <= y0:
        raise QgsProcessingException(f"The processing extent does not overlap {_label(layer)}; choose an extent "
                                     "inside the input or leave it empty.")
    if (x0, y0, x1, y1) == (0, 0, ds.RasterXSize, ds.RasterYSize):
        return source
    vrt = QgsProcessingUtils.generateTempFilename("input_extent.vrt")
    if gdal.Translate(vrt, ds, format="VRT", srcWin=[x0, y0, x1 - x0, y1 - y0]) is None:
        raise QgsProcessingException(f"Cannot clip {_label(layer)} to the extent: {gdal.GetLastErrorMsg()}")
    feedback.pushInfo(f"Processing extent: input pixels {x0}-{x1} x {y0}-{y1} "
                      f"({x1 - x0} x {y1 - y0} of {ds.RasterXSize} x {ds.RasterYSize}).")
    return vrt


def _export_layer(layer: QgsRasterLayer, rect, context: QgsProcessingContext, feedback) -> str:
    """Write a non-GDAL raster layer with a pixel grid to a temporary GeoTIFF; refuse web map and tile layers."""
    provider = layer.dataProvider()
    if not (provider.capabilities() & QgsRasterDataProvider.Size) or provider.xSize() <= 0:
        raise QgsProcessingException(
            f"AerialSeg cannot read {_label(layer)}: it is a '{layer.providerType()}' layer (a web map or tile "
            "service) with no pixel grid of its own. Save the area you need as a GeoTIFF at the resolution you want "
            "(right-click the layer > Export > Save As..., or Raster > Conversion > Translate) and classify that file.")
    extent = layer.extent() if rect is None else rect.intersect(layer.extent())
    if extent.isEmpty():
        raise QgsProcessingException(f"The processing extent does not overlap {_label(layer)}.")
    cols = max(1, round(extent.width() / layer.rasterUnitsPerPixelX()))
    rows = max(1, round(extent.height() / layer.rasterUnitsPerPixelY()))
    path = QgsProcessingUtils.generateTempFilename("input.tif")
    feedback.pushInfo(f"Exporting the '{layer.providerType()}' layer {_label(layer)} ({cols} x {rows} px) to {path}")
    pipe = QgsRasterPipe()
    pipe.set(provider.clone())
    writer = QgsRasterFileWriter(path)
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    block_feedback = QgsRasterBlockFeedback()
    feedback.canceled.connect(block_feedback.cancel)
    error = writer.writeRaster(pipe, cols, rows, extent, layer.crs(), context.transformContext(), block_feedback)
    if error != QgsRasterFileWriter.NoError or feedback.isCanceled():
        raise QgsProcessingException(f"Could not export {_label(layer)} to a temporary GeoTIFF (error {int(error)}).")
    return path


# ---------------------------------------------------------------- styled outputs


class _StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Applies the style the engine wrote when QGIS loads an output: <raster>.qml, the GeoPackage's layer_styles.

    Polygons of an image without georeferencing get no CRS, like the image and the class raster (GDAL reads the
    GeoPackage's undefined srs_id -1 as a CRS with no transformation: QGIS would report transform errors). With a
    ``stack``, the run's layers are kept together in a fixed order (see _Stack).
    """

    def __init__(self, stack=None, rank: int = 0):
        super().__init__()
        self.stack, self.rank = stack, rank

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsRasterLayer):
            qml = Path(layer.source().split("|", 1)[0]).with_suffix(".qml")
            if qml.is_file():
                layer.loadNamedStyle(str(qml))
            if self.stack is not None and layer.renderer() is not None:
                layer.renderer().setOpacity(RASTER_OPACITY)
        elif isinstance(layer, QgsVectorLayer):
            layer.loadDefaultStyle()
            if _undefined(layer.crs()):
                layer.setCrs(QgsCoordinateReferenceSystem())
        if self.stack is not None:
            self.stack.place(layer, self.rank, context.project() or QgsProject.instance())
        layer.triggerRepaint()


def _undefined(crs: QgsCoordinateReferenceSystem) -> bool:
    """Whether ``crs`` is a GeoPackage placeholder for 'no CRS' (srs_id -1, 0 or GDAL's 99999)."""
    return crs.isValid() and not crs.authid() and crs.description().lower().startswith("undefined")


class _Stack:
    """The layers of one run, kept together in the layer tree: polygons above the class raster, in class order.

    QGIS loads outputs in the order of their paths; each post-processor puts its layer in place as it arrives.
    The class raster's legend (the classes) is expanded, the polygon layers' (one symbol) collapsed.
    """

    RASTER = 1000  # rank of the class raster: below every polygon layer

    def __init__(self):
        self.ranks: dict = {}  # layer id -> rank

    def place(self, layer, rank: int, project) -> None:
        self.ranks[layer.id()] = rank
        root = project.layerTreeRoot()
        nodes = [root.findLayer(i) for i in sorted(self.ranks, key=self.ranks.get)]
        if None in nodes or len({id(n.parent()) for n in nodes}) > 1 or nodes[0].parent() is None:
            return  # not all in the tree, or moved apart by the user: leave them
        parent = nodes[0].parent()
        ids = [c.layerId() if QgsLayerTree.isLayer(c) else None for c in parent.children()]
        top = min(ids.index(n.layerId()) for n in nodes)
        parent.insertChildNodes(top, [n.clone() for n in nodes])  # clones first: the layers stay in the project
        for node in nodes:
            parent.removeChildNode(node)
        for layer_id, rank in self.ranks.items():
            root.findLayer(layer_id).setExpanded(rank == self.RASTER)


_post_processors = []  # QGIS takes (and deletes) each one; Python keeps its wrapper until then


def _style_on_load(stack=None, rank: int = 0) -> _StyleOnLoad:
    """A new post-processor for one layer (the context deletes each it was given, so they are never shared)."""
    _post_processors.append(_StyleOnLoad(stack, rank))
    return _post_processors[-1]


def input_name(layer: QgsRasterLayer) -> str:
    """What to call outputs made from ``layer``: its name in the project, else its file name."""
    return layer.name() or Path(layer.source().split("|", 1)[0]).stem


def style_raster_on_load(context: QgsProcessingContext, path: str, name: str = "", stack=None) -> None:
    """Load the engine's .qml when QGIS opens the raster output (dialog, processing.runAndLoadResults).

    ``name``: the layer's name (default: the output's description); ``stack``: a _Stack the raster is the bottom of
    (semi-transparent, under the polygons).
    """
    if path and context.willLoadLayerOnCompletion(path):
        details = context.layerToLoadOnCompletionDetails(path)
        if name:
            details.name, details.forceName = name, True
        details.setPostProcessor(_style_on_load(stack, _Stack.RASTER) if stack else _style_on_load())


def load_gpkg_layers(context: QgsProcessingContext, gpkg: str, prefix: str = "", stack=None) -> list:
    """Open every class layer of the GeoPackage output (not only the first), each with its stored style.

    Layers are named '<prefix> <class>' and, with a ``stack``, kept in class order above its raster. Returns the
    class names. The output value stays the GeoPackage path.
    """
    from osgeo import ogr

    ds = ogr.Open(gpkg)
    names = [] if ds is None else [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())
                                    if ds.GetLayer(i).GetGeomType() != ogr.wkbNone]
    ds = None
    if not context.willLoadLayerOnCompletion(gpkg):
        return names
    layers = context.layersToLoadOnCompletion()
    details = layers.pop(gpkg)
    for rank, name in enumerate(names):
        one = QgsProcessingContext.LayerDetails(f"{prefix} {name}".strip(), details.project, details.outputName,
                                                QgsProcessingUtils.LayerHint.Vector)
        one.forceName = True
        one.setPostProcessor(_style_on_load(stack, rank))
        layers[f"{gpkg}|layername={name}"] = one
    context.setLayersToLoadOnCompletion(layers)
    return names


def open_without_made_up_crs(context: QgsProcessingContext, gpkg: str) -> None:
    """Open the GeoPackage's class layers about to be loaded, giving those of an image without georeferencing no CRS.

    QGIS takes an output it finds in the context's temporary layer store as it is: so these layers never enter the
    project with GDAL's placeholder CRS (QGIS would show 'No transform available' at once). Call it from
    postProcessAlgorithm (the main thread).
    """
    for uri in context.layersToLoadOnCompletion():
        if not uri.startswith(f"{gpkg}|layername="):
            continue
        layer = QgsVectorLayer(uri, "", "ogr")
        if layer.isValid() and _undefined(layer.crs()):
            layer.setCrs(QgsCoordinateReferenceSystem())
            context.temporaryLayerStore().addMapLayer(layer)


def new_stack() -> _Stack:
    """The layer order of one run's outputs (see _Stack)."""
    return _Stack()
