"""aerialseg:check: find the engine, report versions and the runtime (GPU or CPU, and why), say what is missing."""

import sys

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
)

from . import engine as eng
from .base import AerialSegAlgorithm, tr


class CheckAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, GROUP, ICON = "check", "Check the set-up", "setup", "check.svg"
    HELP = ("Finds the AerialSeg engine (the aerialseg program in its own Python environment), reports the "
            "versions of QGIS, the engine and its libraries, whether models will run on the GPU or the CPU and "
            "why, and the bundled models; and says exactly what to install when something is missing.\n\n"
            "The engine is looked for in: the environment variable AERIALSEG_ENGINE; the setting Settings > "
            "Options > Processing > Providers > AerialSeg > AerialSeg engine; the .venv of the repository the "
            "plugin is installed from; the PATH. The run fails (with the instructions) when the engine cannot work.")

    def initAlgorithm(self, config=None):
        for name, label in (("ENGINE", "Engine program"), ("ENGINE_VERSION", "Engine version"),
                            ("DEVICE", "Inference device (GPU or CPU)"), ("REPORT", "Report")):
            self.addOutput(QgsProcessingOutputString(name, tr(label)))
        self.addOutput(QgsProcessingOutputBoolean("OK", tr("Set-up works")))

    def processAlgorithm(self, parameters, context, feedback):
        from osgeo import gdal

        lines = [f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, GDAL {gdal.__version__} (QGIS's own; "
                 "the engine uses its own)"]
        program = eng.find_engine()
        lines.append(f"engine: {program}")
        try:  # the engine's own report: versions, runtimes, the device it picks and why, models
            report = eng.run_json(["check", "--json"], timeout=120)
        except QgsProcessingException as e:
            fix = "" if eng.INSTALLER in str(e) else f" Reinstall or update it: {eng.INSTALL_HELP}"
            raise QgsProcessingException(f"AerialSeg set-up is incomplete: the engine {program} does not run "
                                         f"({e}).{fix}") from None
        device = "GPU" if report["device"] == "cuda" else "CPU"
        lines.append(f"engine Python {report['python']}: aerialseg {report['aerialseg']}, numpy {report['numpy']}, "
                     f"rasterio {report['rasterio']} (GDAL {report['gdal']}), onnxruntime {report['onnxruntime']} "
                     f"({', '.join(report['onnxruntime_providers'])})")
        lines.append(f"inference: {device} ({report['device_reason']})")
        lines.append(f"training: torch {report['torch']}")
        names = ", ".join(report.get("models", []))
        lines.append("bundled models: " + (names or "none (give Model as an .onnx file, or add models to the "
                                                    "models folder)"))
        for line in lines:
            feedback.pushInfo(line)
        feedback.pushInfo(tr("The AerialSeg set-up works."))
        return {"ENGINE": str(program), "ENGINE_VERSION": report["aerialseg"], "DEVICE": device,
                "REPORT": "\n".join(lines), "OK": True}
