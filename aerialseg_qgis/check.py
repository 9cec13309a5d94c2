"""aerialseg:check: find the engine, report versions and the runtime (GPU or CPU, and why), say what is missing."""

import json
import subprocess
import sys

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
)

from . import engine as eng
from .base import AerialSegAlgorithm, tr

# Run with the engine's own Python: what it has, and whether ONNX Runtime can start its CUDA provider.
PROBE = r"""
import importlib, json, os, shutil, sys
r = {"python": sys.version.split()[0], "executable": sys.executable, "packages": {}, "missing": []}
for name in ("aerialseg", "numpy", "rasterio", "shapely", "pyogrio", "geopandas", "onnx", "onnxruntime"):
    try:
        r["packages"][name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as e:
        r["missing"].append("%s (%s: %s)" % (name, type(e).__name__, e))
try:
    import rasterio
    r["packages"]["GDAL (engine)"] = rasterio.__gdal_version__
except Exception:
    pass
gpu = os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0") or bool(shutil.which("nvidia-smi"))
r["device"], r["reason"] = "CPU", ""
try:
    import onnxruntime as ort
    providers = ort.get_available_providers()
    r["providers"] = providers
    if "CUDAExecutionProvider" not in providers:
        r["reason"] = ("this onnxruntime has no CUDA provider; for a GPU, install onnxruntime-gpu in the engine's "
                       "environment (pip install onnxruntime-gpu)")
    elif not gpu:
        r["reason"] = "no NVIDIA GPU found (the CUDA provider is installed and will be used when a GPU is present)"
    else:
        from onnx import TensorProto, helper
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        so = ort.SessionOptions()
        so.log_severity_level = 4
        s = ort.InferenceSession(m.SerializeToString(), so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        if s.get_providers()[0] == "CUDAExecutionProvider":
            r["device"], r["reason"] = "GPU", "NVIDIA GPU found and ONNX Runtime's CUDA provider starts"
        else:
            r["reason"] = ("an NVIDIA GPU is present but ONNX Runtime's CUDA provider does not start: install the CUDA "
                           "and cuDNN libraries this onnxruntime-gpu %s needs (e.g. pip install nvidia-cudnn-cu12 "
                           "nvidia-cublas-cu12 nvidia-cuda-runtime-cu12 in the engine's environment), and an NVIDIA "
                           "driver" % ort.__version__)
except Exception as e:
    r["reason"] = "ONNX Runtime does not work: %s: %s" % (type(e).__name__, e)
try:
    import torch
    r["packages"]["torch"] = torch.__version__
    r["training"] = "GPU" if torch.cuda.is_available() else "CPU"
except Exception:
    r["training"] = "unavailable: install the training extras (pip install torch segmentation-models-pytorch)"
print(json.dumps(r))
"""


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
        python = eng.engine_python(program)
        if python is None or not python.is_file():
            raise QgsProcessingException(f"AerialSeg: cannot find the Python interpreter of {program}. "
                                         f"{eng.INSTALL_HELP}")
        probe = self._probe(python)
        version = probe["packages"].get("aerialseg", "?")
        lines.append(f"engine Python: {probe['executable']} ({probe['python']})")
        lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in probe["packages"].items()))
        lines.append(f"inference: {probe['device']} ({probe['reason']})")
        lines.append(f"training: {probe['training']}")
        problems = [f"the engine's Python lacks {m}" for m in probe["missing"]]
        try:
            models = eng.run_json(["models", "--json"])
            names = ", ".join(m["name"] for m in models)
            lines.append("bundled models: " + (names or "none (give Model as an .onnx file, or add models to the "
                                                        "models folder)"))
        except QgsProcessingException as e:
            problems.append(f"'aerialseg models' fails: {e}")
        for line in lines:
            feedback.pushInfo(line)
        if problems:
            raise QgsProcessingException("AerialSeg set-up is incomplete: " + "; ".join(problems) + ". Reinstall the "
                                         "engine's dependencies in its environment (bash setup.sh in the repository, "
                                         f"or {python} -m pip install /path/to/aerialseg).")
        feedback.pushInfo(tr("The AerialSeg set-up works."))
        return {"ENGINE": str(program), "ENGINE_VERSION": version, "DEVICE": probe["device"],
                "REPORT": "\n".join(lines), "OK": True}

    @staticmethod
    def _probe(python) -> dict:
        proc = eng.start([str(python), "-c", PROBE])
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise QgsProcessingException(f"AerialSeg: {python} did not answer within 2 minutes") from None
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise QgsProcessingException(f"AerialSeg: the engine's Python {python} does not run: "
                                         f"{(err or out).strip().splitlines()[-1:] or ['no output']}") from None
