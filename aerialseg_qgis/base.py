"""What every AerialSeg algorithm shares: naming and help, parameters, inputs as files, styled outputs."""

import os
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .engine import configured_scheduler, run_engine
from .layers import open_without_made_up_crs, output_error, raster_source

ICONS = Path(__file__).resolve().parent / "icons"
GROUPS = {"mapping": "Land-cover mapping", "models": "Models", "setup": "Set-up"}
DEVICES = (("Automatic (GPU when one works, else CPU)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
TTA_MODES = (("None", "none"), ("Flips (4 passes)", "flip"), ("Flips and rotations (8 passes)", "d4"))
# REGULARIZE's engine options by choice: automatic passes none (the engine decides)
REGULARIZE_OPTIONS = ((), ("--regularize",), ("--no-regularize",))  # 0 automatic, 1 yes, 2 no
DEFAULT_CLASSES = "building,road,water"
INT, DOUBLE = QgsProcessingParameterNumber.Integer, QgsProcessingParameterNumber.Double


def tr(text: str) -> str:
    return QCoreApplication.translate("AerialSeg", text)


class AerialSegAlgorithm(QgsProcessingAlgorithm):
    """Base of the AerialSeg algorithms: a subclass sets NAME, DISPLAY, GROUP, HELP, ICON."""

    NAME = DISPLAY = HELP = ""
    GROUP = "mapping"
    ICON = "aerialseg.svg"
    polygons = ""  # the GeoPackage this run wrote, if any (see postProcessAlgorithm)

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return tr(self.DISPLAY)

    def group(self) -> str:
        return tr(GROUPS[self.GROUP])

    def groupId(self) -> str:
        return self.GROUP

    def icon(self) -> QIcon:
        return QIcon(str(ICONS / self.ICON))

    def createInstance(self):
        return type(self)()

    def tags(self) -> list:
        return ["aerialseg", "land cover", "landcover", "segmentation", "classification", "deep learning", "onnx",
                "aerial", "orthophoto", self.NAME]

    def shortDescription(self) -> str:
        return tr(self.HELP.split("\n", 1)[0])

    def shortHelpString(self) -> str:
        """The algorithm's help, then each parameter's: the same text in the dialog and in qgis_process help."""
        rows = "".join(f"<li><b>{p.description()}</b> (<code>{p.name()}</code>): {p.help()}</li>"
                       for p in self.parameterDefinitions() if p.help())
        body = "".join(f"<p>{tr(part)}</p>" for part in self.HELP.split("\n\n"))
        return body + (f"<p><b>{tr('Parameters')}</b></p><ul>{rows}</ul>" if rows else "")

    def helpUrl(self) -> str:
        return "https://github.com/aerialseg/aerialseg/blob/main/docs/qgis.md"

    def add(self, param: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False):
        """Add a parameter with its help text (tooltip in the dialog, listed in the help)."""
        param.setHelp(tr(help_text))
        if advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(param)
        return param

    # ------------------------------------------------------------ shared parameters

    def add_model_parameters(self) -> None:
        """INPUT, MODEL, DEVICE, EXTENT and the advanced tiling options of classify and map."""
        self.add(QgsProcessingParameterRasterLayer("INPUT", tr("Input raster (orthophoto)")),
                 "The image to classify: any GDAL raster (GeoTIFF, JPEG 2000, VRT, ...) with the bands the model "
                 "expects. Web map/tile layers are refused: export them to a GeoTIFF first.")
        model = self.add(QgsProcessingParameterString("MODEL", tr("Model"), defaultValue="", optional=True),
                         "Empty: automatic, the bundled model whose ground resolution fits the input best (the log "
                         "says which and why; in Map land cover, when that is the building model, the other classes "
                         "come from the land-cover model); the name of a bundled model (aerialseg models lists them); the path "
                         "of an ONNX model file (.onnx) with an AerialSeg or Deepness model card; or an https URL of "
                         "one (downloaded once into the user cache; add #sha256=... to have it verified).")
        model.setMetadata({"widget_wrapper": {"class": "aerialseg_qgis.widgets.ModelWidgetWrapper"}})
        self.add(QgsProcessingParameterEnum("DEVICE", tr("Device"), [tr(d) for d, _ in DEVICES], defaultValue=0),
                 "Where the model runs: 0 automatic (the CUDA GPU when one works, else the CPU; the log says which "
                 "and why), 1 CPU, 2 GPU (fails when no GPU works).")
        self.add(QgsProcessingParameterExtent("EXTENT", tr("Processing extent"), optional=True),
                 "Only classify this part of the input (any CRS; snapped outwards to whole input pixels). The "
                 "outputs then cover this extent on the input's pixel grid. Empty: the whole input.")
        self.add_gsd_parameter("The ground size of a pixel of an image that has no georeferencing (a drone JPG, a "
                               "screenshot), so it is resampled to the model's resolution (and polygon areas are "
                               "square metres). Ignored for georeferenced rasters.")
        self.add(QgsProcessingParameterNumber("TILE_SIZE", tr("Tile size (pixels)"), INT, optional=True, minValue=16),
                 "Model input tile in pixels. Empty: the model card's.", advanced=True)
        self.add(QgsProcessingParameterNumber("OVERLAP", tr("Tile overlap (pixels)"), INT, optional=True, minValue=0),
                 "Pixels neighbouring tiles share; they are blended smoothly. Empty: the model card's.", advanced=True)
        self.add(QgsProcessingParameterNumber("BATCH_SIZE", tr("Batch size (tiles)"), INT, defaultValue=4, minValue=1),
                 "Tiles per model call; larger is faster on a GPU and uses more memory.", advanced=True)
        self.add(QgsProcessingParameterEnum("TTA", tr("Test-time augmentation"), [tr(t) for t, _ in TTA_MODES],
                                            defaultValue=0),
                 "0 none, 1 flips (4 passes), 2 flips and rotations (8 passes): slower, smoother results.",
                 advanced=True)
        self.add(QgsProcessingParameterBoolean("RESAMPLE", tr("Resample to the model's ground resolution"),
                                               defaultValue=True),
                 "Resample the input on the fly to the ground resolution the model was trained at (results land "
                 "back on the input grid). Off: use the input at its own resolution.", advanced=True)
        self.add(QgsProcessingParameterString("SCHEDULER", tr("Dask scheduler address"), optional=True,
                                              defaultValue=configured_scheduler()),
                 "Send the work to the Dask cluster at this scheduler (tcp://host:8786): workers read the input and "
                 "write the result, so both must be on a filesystem they share. Empty: run on this machine. The "
                 "default comes from Settings > Options > Processing > Providers > AerialSeg.", advanced=True)

    def model_args(self, parameters: dict, context: QgsProcessingContext) -> list:
        """Engine options for MODEL, DEVICE and the advanced tiling parameters."""
        args = []
        model = (self.parameterAsString(parameters, "MODEL", context) or "").strip()
        if model and not model.lower().startswith(("http://", "https://")):
            suffix = Path(model).suffix.lower()
            looks_like_path = os.sep in model or "/" in model or suffix in (".onnx", ".pt", ".pth")
            if looks_like_path and not Path(model).is_file():
                raise QgsProcessingException(f"Model file not found: {model}. Give an existing .onnx file, the name "
                                             f"of a bundled model, or leave Model empty to choose automatically.")
        if model:
            args += ["--model", model]
        args += ["--device", DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)][1]]
        for name, option in (("TILE_SIZE", "--tile-size"), ("OVERLAP", "--overlap"), ("BATCH_SIZE", "--batch-size")):
            if given(parameters, name):
                args += [option, str(self.parameterAsInt(parameters, name, context))]
        tta = TTA_MODES[self.parameterAsEnum(parameters, "TTA", context)][1]
        if tta != "none":
            args += ["--tta", tta]
        args += self.gsd_args(parameters, context)
        if not self.parameterAsBoolean(parameters, "RESAMPLE", context):
            args.append("--no-resample")
        scheduler = (self.parameterAsString(parameters, "SCHEDULER", context) or "").strip()
        if scheduler:
            args += ["--scheduler", scheduler]
        return args

    def add_gsd_parameter(self, help_text: str) -> None:
        """INPUT_GSD (advanced): the pixel size of an input without georeferencing."""
        self.add(QgsProcessingParameterNumber("INPUT_GSD", tr("Input pixel size (metres), for images without "
                                              "georeferencing"), DOUBLE, optional=True, minValue=0.001),
                 help_text, advanced=True)

    def gsd_args(self, parameters: dict, context: QgsProcessingContext) -> list:
        """Engine options for INPUT_GSD."""
        if not given(parameters, "INPUT_GSD"):
            return []
        return ["--input-gsd", repr(self.parameterAsDouble(parameters, "INPUT_GSD", context))]

    def add_vector_parameters(self, automatic: str, automatic_help: str) -> None:
        """CLASSES, MIN_AREA, SIMPLIFY and REGULARIZE of vectorize and map; ``automatic``: the label of REGULARIZE's
        choice 0 there, ``automatic_help`` its explanation."""
        self.add(QgsProcessingParameterString("CLASSES", tr("Classes to extract"), defaultValue=DEFAULT_CLASSES),
                 "Comma-separated class names or ids of the class raster. The default (building,road,water) "
                 "takes those of them the raster has; any other list must name existing classes.")
        self.add(QgsProcessingParameterNumber("MIN_AREA", tr("Minimum area (m², pixels without georeferencing)"),
                                              DOUBLE, optional=True, minValue=0.0),
                 "Polygons smaller than this ground area (square metres, measured on the ground in any CRS) are "
                 "dropped. On an image without georeferencing (and no Input pixel size) it is in pixels. Empty: "
                 "1 m², or 16 pixels without georeferencing.")
        self.add(QgsProcessingParameterNumber("SIMPLIFY", tr("Simplification tolerance (m)"), DOUBLE, optional=True,
                                              minValue=0.0),
                 "Douglas-Peucker tolerance in ground metres. Empty: one pixel's ground size (straightens pixel "
                 "staircases); 0 keeps every pixel corner.")
        self.add(QgsProcessingParameterEnum("REGULARIZE", tr("Regularise buildings (right angles)"),
                                            [tr(automatic), tr("Yes"), tr("No")], defaultValue=0),
                 "Square the outlines of the class named building to right angles: 0 " + automatic_help
                 + "; 1 yes; 2 no. True or false from a script (processing.run) still means yes or no.")

    def vector_args(self, parameters: dict, context: QgsProcessingContext) -> list:
        """Engine options for CLASSES, MIN_AREA, SIMPLIFY and REGULARIZE."""
        text = self.parameterAsString(parameters, "CLASSES", context) or ""
        classes = ",".join(c.strip() for c in text.split(",") if c.strip())
        args = [] if classes in ("", DEFAULT_CLASSES) else ["--classes", classes]
        if given(parameters, "MIN_AREA"):
            args += ["--min-area", repr(self.parameterAsDouble(parameters, "MIN_AREA", context))]
        if given(parameters, "SIMPLIFY"):
            args += ["--simplify", repr(self.parameterAsDouble(parameters, "SIMPLIFY", context))]
        return args + self.regularize_args(parameters, context)

    def regularize_args(self, parameters: dict, context: QgsProcessingContext) -> list:
        """Engine options for REGULARIZE: a choice, or true/false of a script written when it was a checkbox."""
        choice = checkbox_choice(parameters.get("REGULARIZE"))
        if choice is None:
            choice = self.parameterAsEnum(parameters, "REGULARIZE", context)
        return list(REGULARIZE_OPTIONS[choice])

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext):
        """QGIS's checks, with REGULARIZE's old true/false (it was a checkbox) read as 1 yes / 2 no."""
        choice = checkbox_choice(parameters.get("REGULARIZE"))
        if choice is not None:
            parameters = {**parameters, "REGULARIZE": choice}
        return super().checkParameterValues(parameters, context)

    # ------------------------------------------------------------ inputs

    def input_raster(self, parameters: dict, name: str, context: QgsProcessingContext, feedback,
                     extent_param: str = "") -> str:
        """A GDAL dataset name the engine can read for a raster parameter, clipped to ``extent_param`` if set.

        See layers.raster_source: GDAL layers as they are, other gridded layers exported, web layers refused.
        """
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        rect = None
        if extent_param and given(parameters, extent_param):
            rect = self.parameterAsExtent(parameters, extent_param, context, layer.crs())
            rect = None if rect.isNull() else rect
        return raster_source(layer, rect, context, feedback)

    # ------------------------------------------------------------ outputs

    def output_path(self, parameters: dict, name: str, context: QgsProcessingContext, extensions: tuple) -> str:
        """The file path of a destination parameter ('' if an optional one is skipped), checked and with its folder."""
        path = self.parameterAsOutputLayer(parameters, name, context) or ""
        if not path:
            return ""
        error = output_error(path, extensions)
        if error:
            raise QgsProcessingException(f"{self.parameterDefinition(name).description()}: {error}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return str(Path(path).absolute())

    def postProcessAlgorithm(self, context: QgsProcessingContext, feedback) -> dict:
        """In the main thread, before QGIS loads the outputs: polygons of images without georeferencing get no CRS."""
        if self.polygons:
            open_without_made_up_crs(context, self.polygons)
        return {}  # the results of processAlgorithm stand

    def engine(self, args: list, feedback, span: tuple = (0.0, 100.0), progress_pattern: str = "",
               stages: "dict | None" = None) -> dict:
        """Run ``aerialseg <args>`` out of process; returns its result line (see engine.run_engine)."""
        return run_engine(args, feedback, span, progress_pattern, stages)


def checkbox_choice(value) -> "int | None":
    """REGULARIZE's choice (1 yes, 2 no) for true/false (a bool, or text from qgis_process); None for others."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    return (1 if value else 2) if isinstance(value, bool) else None


def given(parameters: dict, name: str) -> bool:
    value = parameters.get(name)
    return value is not None and str(value).strip() != ""
