"""The AerialSeg Processing provider (id ``aerialseg``) and its setting: where the engine is."""

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICONS, tr
from .check import CheckAlgorithm
from .classify import ClassifyAlgorithm
from .engine import SCHEDULER_SETTING, SETTING_NAME
from .evaluate import EvaluateAlgorithm
from .installengine import InstallEngineAlgorithm
from .layers import RASTER_EXTENSIONS, output_error
from .map import MapAlgorithm
from .train import TrainAlgorithm
from .vectorize import VectorizeAlgorithm

ALGORITHMS = (ClassifyAlgorithm, VectorizeAlgorithm, MapAlgorithm, EvaluateAlgorithm, TrainAlgorithm, CheckAlgorithm,
              InstallEngineAlgorithm)


def plugin_version() -> str:
    """The version in metadata.txt (next to the package, or at the repository root for a linked install)."""
    for folder in (Path(__file__).parent, Path(__file__).resolve().parent.parent):
        meta = folder / "metadata.txt"
        if meta.is_file():
            for line in meta.read_text(encoding="utf-8").splitlines():
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    return ""


class AerialSegProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "aerialseg"

    def name(self) -> str:
        return "AerialSeg"

    def longName(self) -> str:
        return f"AerialSeg {plugin_version()}".strip()

    def icon(self) -> QIcon:
        return QIcon(str(ICONS / "aerialseg.svg"))

    def versionInfo(self) -> str:
        return plugin_version()

    def supportsNonFileBasedOutput(self) -> bool:
        return False  # the engine writes files: GeoTIFF class rasters, GeoPackages

    def load(self) -> bool:
        """Register the 'AerialSeg engine' setting (Settings > Options > Processing > Providers > AerialSeg)."""
        try:  # the Processing framework's settings UI; absent in a bare QGIS Python without the processing plugin
            from processing.core.ProcessingConfig import ProcessingConfig, Setting
        except ImportError:
            ProcessingConfig = None
        if ProcessingConfig is not None:
            ProcessingConfig.settingIcons[self.name()] = self.icon()
            ProcessingConfig.addSetting(Setting(
                self.name(), SETTING_NAME,
                tr("AerialSeg engine: the aerialseg program, or its environment's folder (empty: auto-detect)"),
                "", valuetype=Setting.FILE))
            ProcessingConfig.addSetting(Setting(
                self.name(), SCHEDULER_SETTING,
                tr("Dask scheduler address for classify and map, e.g. tcp://10.0.0.5:8786 (empty: this machine)"),
                ""))
            ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(SETTING_NAME)
            ProcessingConfig.removeSetting(SCHEDULER_SETTING)
        except (ImportError, KeyError):
            pass

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list:
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list:
        return ["gpkg"]

    def isSupportedOutputValue(self, outputValue, parameter, context):
        """Refuse outputs AerialSeg cannot write (a .shp, a PostGIS table, ...) before the run starts."""
        if parameter.type() not in ("rasterDestination", "vectorDestination"):
            return True, ""
        value = outputValue.sink.staticValue() if hasattr(outputValue, "sink") else outputValue
        path = str(value or "")
        if not path or path == "TEMPORARY_OUTPUT":
            return True, ""
        error = output_error(path, RASTER_EXTENSIONS if parameter.type() == "rasterDestination" else (".gpkg",))
        return not error, error
