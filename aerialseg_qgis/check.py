"""aerialseg:check: find the engine, report versions and the runtime (GPU or CPU, and why), say what is missing."""

import subprocess
import sys

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
)

from . import engine as eng
from . import installer as ins
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
                            ("DEVICE", "Inference device (GPU or CPU)")):  # the report itself is the log
            self.addOutput(QgsProcessingOutputString(name, tr(label)))
        self.addOutput(QgsProcessingOutputBoolean("OK", tr("Set-up works")))

    def processAlgorithm(self, parameters, context, feedback):
        from osgeo import gdal

        lines = [f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, GDAL {gdal.__version__} (QGIS's own; "
                 "the engine uses its own)"]
        program = eng.find_engine()
        lines.append(f"engine: {program}")
        report = self._engine_report(program)
        device = "GPU" if report.get("device") == "cuda" else "CPU"
        get = lambda key: report.get(key, "?")
        lines.append(f"engine Python {get('python')}: aerialseg {get('aerialseg')}, numpy {get('numpy')}, "
                     f"rasterio {get('rasterio')} (GDAL {get('gdal')}), onnxruntime {get('onnxruntime')} "
                     f"({', '.join(report.get('onnxruntime_providers', []))})")
        lines.append(f"inference: {device} ({get('device_reason')})")
        lines.append(f"training: torch {get('torch')}")
        names = ", ".join(m if isinstance(m, str) else str(m.get("name", m)) for m in report.get("models", []))
        lines.append("bundled models: " + (names or "none (give Model as an .onnx file, or add models to the "
                                                    "models folder)"))
        for line in lines:
            feedback.pushInfo(line)
        feedback.pushInfo(tr("The AerialSeg set-up works."))
        return {"ENGINE": str(program), "ENGINE_VERSION": str(get("aerialseg")), "DEVICE": device, "OK": True}

    @staticmethod
    def _engine_report(program) -> dict:
        """The engine's own check (versions, runtimes, the device it picks and why, models); a failed check (exit
        status, or a result line with ok false) raises with the check's message and the way to fix it."""
        proc = eng.start([str(program), "check", "--json"])
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise QgsProcessingException(f"AerialSeg: '{program} check' did not answer in 120 s.") from None
        ok, message = ins.parse_check(out, err, proc.returncode)
        if ok:
            return ins.check_report(out)
        if "Traceback (most recent call last)" in err:
            message = f"the engine {program} is broken: {message}"
        raise QgsProcessingException(f"AerialSeg set-up is incomplete: {message}. Reinstall or update the engine: "
                                     f"{eng.INSTALL_HELP}")
