"""``aerialseg check``: what this installation can do, and whether it works.

The report lists versions, the device a model runs on and why, and the models found. It is honest:
it loads the default model on the requested device and runs one tile through it, so a missing or
unloadable model, or a device that does not work, is a problem (``ok`` is False). Torch is imported
only when the training stack is checked (``train=True``), so a check takes about a second.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
from typing import Any

from aerialseg._version import __version__
from aerialseg.errors import AerialSegError, first_line

# Import names an extra provides, as the engine imports them.
EXTRA_MODULES = {
    "train": ("torch", "torchvision", "segmentation_models_pytorch", "matplotlib"),
    "cluster": ("dask", "distributed"),
}


def environment_report(device: str = "auto", train: bool = False, cluster: bool = False) -> dict[str, Any]:
    """The installation's report; ``problems`` lists what does not work and ``ok`` is True when none.

    Args:
        device: The device to prove: "auto" (whatever works), "cpu" or "cuda" (must work).
        train: Also import and check the training stack (the [train] extra).
        cluster: Also check that the [cluster] extra (Dask) is importable.
    """
    report: dict[str, Any] = {"aerialseg": __version__, "python": platform.python_version()}
    problems: list[str] = []
    if _base_versions(report, problems):
        default = _models(report, problems)
        if default is not None:
            _inference(report, problems, default, device)
    report["torch"] = _training(report, problems) if train else _installed("torch", "training and .pt checkpoints")
    if cluster:
        _importable("cluster", problems)
    report["problems"], report["ok"] = problems, not problems
    return report


def _base_versions(report: dict[str, Any], problems: list[str]) -> bool:
    """Versions of the base dependencies; False (and a problem) when one cannot be imported."""
    try:
        import numpy as np
        import onnxruntime as ort
        import rasterio
    except ImportError as e:
        problems.append(f"{e.name} cannot be imported ({first_line(e)}); reinstall the engine: pip install aerialseg")
        return False
    from aerialseg.runtime import gpu_present

    report.update(numpy=np.__version__, rasterio=rasterio.__version__, gdal=rasterio.__gdal_version__,
                  onnxruntime=ort.__version__, onnxruntime_providers=ort.get_available_providers(),
                  onnxruntime_builds=_onnxruntime_builds(), nvidia_gpu=gpu_present())
    if len(report["onnxruntime_builds"]) > 1:
        problems.append("onnxruntime and onnxruntime-gpu are both installed and overwrite each other; keep one: "
                        "pip uninstall -y onnxruntime onnxruntime-gpu && pip install --no-deps onnxruntime-gpu "
                        "(or onnxruntime for the CPU only)")
    return True


def _onnxruntime_builds() -> list[str]:
    """The ONNX Runtime distributions installed (they all provide the one ``onnxruntime`` module)."""
    names = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _models(report: dict[str, Any], problems: list[str]) -> str | None:
    """The models found and the default model's name (None, and a problem, when there is none)."""
    from aerialseg.runtime import bundled_models, default_model_name, models_dirs, resolve_model

    report["models_dirs"] = [str(d) for d in models_dirs()]
    report["models"] = []
    try:
        report["models"] = [m.name for m in bundled_models()]
        name = default_model_name()
        resolve_model(name)
    except AerialSegError as e:
        report["default_model"] = f"none: {e}"
        problems.append(f"no usable default model: {e}")
        return None
    report["default_model"] = name
    return name


def _inference(report: dict[str, Any], problems: list[str], name: str, device: str) -> None:
    """Load the default model on ``device`` and run one tile through it."""
    import numpy as np

    from aerialseg.runtime import auto_device, load_model

    report["device"], report["device_reason"] = auto_device()
    try:
        model = load_model(name, device=device)
        card = model.card
        model.predict(np.zeros((1, len(card.bands), card.tile_size, card.tile_size), np.float32))
    except AerialSegError as e:
        problems.append(f"the default model {name} does not run on device '{device}': {e}")
        return
    report["device"], report["device_reason"] = model.device, getattr(model, "reason", report["device_reason"])


def _installed(dist: str, needed_for: str) -> str:
    """A distribution's version without importing it (importing torch takes seconds)."""
    try:
        return f"{importlib.metadata.version(dist)} (not checked; 'aerialseg check --train' imports it)"
    except importlib.metadata.PackageNotFoundError:
        return f'not installed (needed only for {needed_for}: pip install "aerialseg[train]")'


def _training(report: dict[str, Any], problems: list[str]) -> str:
    """Import the training stack; its torch version and whether CUDA works for torch."""
    if not _importable("train", problems):
        return "not usable (see problems)"
    import torch

    return f"{torch.__version__} (CUDA {'available' if torch.cuda.is_available() else 'not available'})"


def _importable(extra: str, problems: list[str]) -> bool:
    """Import every module of ``extra``; a problem naming the extra for each that fails."""
    ok = True
    for module in EXTRA_MODULES[extra]:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001  a broken install raises anything, not only ImportError
            problems.append(f'{module} cannot be imported ({first_line(e)}); pip install "aerialseg[{extra}]"')
            ok = False
    return ok
