"""Model loading and execution: ONNX Runtime (CUDA, else CPU) and PyTorch checkpoints.

``load_model`` accepts a bundled model name (package data in ``aerialseg/models/``), an ONNX path or a PyTorch
checkpoint path, and returns an object with a ``card`` and ``predict(batch) -> probabilities``. It logs one line
saying which runtime and device run the model, and why.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aerialseg.card import ModelCard, read_card
from aerialseg.download import cached_models, fetch_model, is_url
from aerialseg.errors import MissingExtra, ModelError, first_line
from aerialseg.options import DEVICES, PRECISIONS, check_choice

log = logging.getLogger("aerialseg")
MODELS_DIR = Path(__file__).resolve().parent / "models"  # package data: travels inside the wheel
_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")
INT8_SUFFIX = ".int8"  # <name>.int8.onnx beside <name>.onnx: its static int8 (QDQ) variant
INT8_MIN_SPEEDUP, INT8_MAX_MIOU_LOSS = 1.5, 0.01  # what auto precision asks of a variant (from its card)


class Model(Protocol):
    """What the pipeline needs from a model."""

    card: ModelCard
    device: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K, H, W) float32 for a normalised (N, C, H, W) float32 batch."""
        ...


@dataclass(frozen=True)
class BundledModel:
    """A model shipped in the package (``aerialseg/models/``) or found in ``$AERIALSEG_MODELS``."""

    name: str
    path: Path
    card: ModelCard


def models_dirs() -> list[Path]:
    """Folders searched for models: ``$AERIALSEG_MODELS`` (os.pathsep-separated), then the package's own."""
    extra = [Path(p) for p in os.environ.get("AERIALSEG_MODELS", "").split(os.pathsep) if p]
    return [*extra, MODELS_DIR]


def bundled_models() -> list[BundledModel]:
    """All ONNX models in the model folders, with their cards."""
    found: dict[str, BundledModel] = {}
    for folder in models_dirs():
        for path in sorted(folder.glob("*.onnx")):
            if path.stem.endswith(INT8_SUFFIX):
                continue  # a variant of a model, chosen by --precision
            found.setdefault(path.stem, BundledModel(path.stem, path, read_card(path)))
    for path in cached_models():  # downloaded by URL: listed by their path, which --model accepts
        found.setdefault(str(path), BundledModel(str(path), path, read_card(path)))
    return list(found.values())


def default_model_name() -> str:
    """The default model: named in ``aerialseg/models/DEFAULT`` if present, else the first bundled model."""
    marker = MODELS_DIR / "DEFAULT"
    if marker.is_file():
        return marker.read_text().strip()
    names = sorted(p.stem for d in models_dirs() for p in d.glob("*.onnx"))
    if not names:
        raise ModelError(f"no bundled model found in {MODELS_DIR}; pass --model path/to/model.onnx")
    return names[0]


def resolve_model(spec: str | Path | None) -> Path:
    """Turn a bundled name, a path, or None (the default model) into an existing model file."""
    spec = default_model_name() if spec is None else spec
    if is_url(spec):
        return fetch_model(str(spec))
    path = Path(spec)
    if path.suffix.lower() in (".onnx", *_TORCH_SUFFIXES) or path.exists():
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path
    for folder in models_dirs():
        candidate = folder / f"{spec}.onnx"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for d in models_dirs() for p in d.glob("*.onnx")})
    raise ModelError(f"unknown model '{spec}'; bundled models: {', '.join(names) or 'none'} (or pass an .onnx path)")


def load_model(
    spec: str | Path | None = None, device: str = "auto", threads: int | None = None, precision: str = "auto"
) -> Model:
    """Load a model by bundled name or path on ``device`` ("auto", "cpu" or "cuda").

    ``precision``: "fp32", "fp16" (the graph converted to float16 when loaded, inputs and outputs kept float32:
    for a CUDA GPU), "int8" (the model's ``.int8.onnx`` variant) or "auto": on a CUDA GPU fp16 (when the
    converter of the [gpu] extra is installed), on the CPU the int8 variant when its card shows it at least
    1.5x faster with an mIoU within 0.01 of the float model's.
    """
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    path = resolve_model(spec)
    if path.suffix.lower() in _TORCH_SUFFIXES:
        if precision in ("int8", "fp16"):
            raise ModelError(f"{path} is a PyTorch checkpoint: --precision {precision} needs an ONNX model")
        return TorchModel(path, device)
    if precision == "fp16" or (precision == "auto" and _runs_on_cuda(device) and _fp16_converter_installed()):
        return OnnxModel(path, device, threads, fp16=True)
    return OnnxModel(_with_precision(path, device, precision), device, threads)


def _fp16_converter_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxconverter_common") is not None


def _float16_graph(path: Path) -> bytes:
    """The model with float16 weights and arithmetic, float32 inputs and outputs (for CUDA's tensor cores)."""
    import warnings

    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingExtra("--precision fp16", "gpu", "onnxconverter-common") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated": tiny weights, by design
        model = float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return model.SerializeToString()


def _with_precision(path: Path, device: str, precision: str) -> Path:
    """The model file to run: ``path`` or its int8 variant."""
    variant = path.with_name(f"{path.stem}{INT8_SUFFIX}.onnx")
    if precision == "int8":
        if not variant.is_file():
            raise ModelError(f"{path.name} has no int8 variant ({variant.name}); use --precision fp32")
        return variant
    if precision == "fp32" or not variant.is_file() or _runs_on_cuda(device):
        return path
    figures = dict(read_card(variant).metrics).get("int8") or {}
    try:
        speedup, miou, miou_fp32 = (float(figures[k]) for k in ("speedup_cpu", "miou", "miou_fp32"))
    except (KeyError, TypeError, ValueError):  # a variant without its figures is not chosen automatically
        return path
    if speedup >= INT8_MIN_SPEEDUP and miou >= miou_fp32 - INT8_MAX_MIOU_LOSS:
        log.info("precision: int8 (%.2fx faster on the CPU, mIoU %.4f vs %.4f in float32 on its card's test images)",
                 speedup, miou, miou_fp32)
        return variant
    return path


def _runs_on_cuda(device: str) -> bool:
    """Whether ONNX Runtime would put a model on CUDA for ``device``."""
    if device == "cpu":
        return False
    import onnxruntime as ort

    try:
        providers, _ = _choose_providers(ort.get_available_providers(), device)
    except ModelError:
        return device == "cuda"
    return providers[0] == "CUDAExecutionProvider"


def model_card(spec: str | Path | None) -> ModelCard:
    """The card of a bundled model name or model file (ONNX or PyTorch checkpoint), without a session."""
    path = resolve_model(spec)
    if path.suffix.lower() in _TORCH_SUFFIXES:
        return TorchModel(path, "cpu").card
    return read_card(path)


def gpu_present() -> bool:
    """True if an NVIDIA GPU device node exists (cheap check before trying CUDA)."""
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


class OnnxModel:
    """An ONNX model in ONNX Runtime, on CUDA when asked for or available, else on the CPU."""

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None, fp16: bool = False) -> None:
        import onnxruntime as ort

        self.path, self.precision = path, "fp16" if fp16 else "fp32"
        self.card = read_card(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # our own log line says which provider runs, and why
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        providers, reason = _choose_providers(ort.get_available_providers(), device)
        ort.set_default_logger_severity(4)  # our own log line says which provider runs and why
        if "CUDAExecutionProvider" in providers:
            _preload_cuda_libraries()
        try:
            graph = _float16_graph(path) if fp16 else str(path)
            self.session = ort.InferenceSession(graph, options, providers=providers)
        except Exception as e:  # ORT raises its own exception types for bad graphs
            raise ModelError(f"ONNX Runtime cannot load {path}: {first_line(e)}") from None
        active = self.session.get_providers()[0]
        self.device = "cuda" if active in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        if "CUDAExecutionProvider" in providers and self.device == "cpu":
            reason = f"the CUDA provider failed to start: {_cuda_problem(ort)}"
        if device == "cuda" and self.device != "cuda":
            raise ModelError(f"device 'cuda' was requested but {reason}; use --device cpu")
        self.reason = reason
        log.info("runtime: ONNX Runtime %s on %s (%s)%s", ort.__version__, self.device.upper(), reason,
                 ", float16" if fp16 else "")
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        _check_channels(self.card, inputs[0].shape, path)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        except Exception as e:  # ORT's own exception types: a shape or type the graph does not accept
            raise ModelError(f"the model rejected a {'x'.join(map(str, batch.shape))} input batch: "
                             f"{first_line(e)[:300]}") from None
        return _as_probabilities(out, self.card, batch.shape)


def auto_device() -> tuple[str, str]:
    """The device ``auto`` would pick on this machine ("cuda" or "cpu") and why, without loading a model."""
    import onnxruntime as ort

    providers, reason = _choose_providers(ort.get_available_providers(), "auto")
    if "CUDAExecutionProvider" not in providers:
        return "cpu", reason
    _preload_cuda_libraries()
    problem = _cuda_problem(ort)
    if problem != "no usable CUDA device":
        return "cpu", f"the CUDA provider cannot start: {problem}"
    return "cuda", reason


def _choose_providers(available: list[str], device: str) -> tuple[list[str], str]:
    """ONNX Runtime providers for ``device`` and the reason for the choice."""
    if device == "cpu":
        return ["CPUExecutionProvider"], "CPU requested"
    if "CUDAExecutionProvider" not in available:
        if device == "cuda":
            raise ModelError("device 'cuda' requested but this onnxruntime (the CPU build) has no CUDA provider; "
                             "install the [gpu] extra and swap the builds (README, 'Install'), or use --device cpu")
        return ["CPUExecutionProvider"], "this onnxruntime build has no CUDA provider"
    if not gpu_present() and device == "auto":
        return ["CPUExecutionProvider"], "no NVIDIA GPU found"
    return ["CUDAExecutionProvider", "CPUExecutionProvider"], "NVIDIA GPU found"


# CUDA libraries that pip's nvidia-* wheels install (the CUDA 13 layout, then the older per-library one).
_CUDA_LIBRARIES = ("libcudart.so.*", "libcublasLt.so.*", "libcublas.so.*", "libcufft.so.*", "libcurand.so.*",
                   "libnvrtc.so.*", "libnvJitLink.so.*", "libcudnn*.so.*")


def _preload_cuda_libraries() -> None:
    """Load the CUDA/cuDNN libraries of pip's nvidia-* wheels so ONNX Runtime's CUDA provider finds them.

    Without this the provider only looks on the system's library path and fails even with a working GPU.
    On Windows, ONNX Runtime's own loader finds the wheels' DLLs (and the MSVC runtime).
    """
    import ctypes
    import importlib.util

    if os.name == "nt":
        import onnxruntime as ort

        with contextlib.suppress(Exception):  # an older onnxruntime, or DLLs the provider then reports missing
            ort.preload_dlls()
        return

    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        dirs = sorted(Path(root).glob("*/lib"))
        for pattern in _CUDA_LIBRARIES:
            for lib in (f for d in dirs for f in sorted(d.glob(pattern))):
                with contextlib.suppress(OSError):  # one the provider does not need, or another CUDA's
                    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


def _cuda_problem(ort: object) -> str:
    """Why the CUDA provider library cannot load (e.g. a missing libcuda.so.1: no NVIDIA driver)."""
    import ctypes

    name = "onnxruntime_providers_cuda.dll" if os.name == "nt" else "libonnxruntime_providers_cuda.so"
    lib = Path(ort.__file__).parent / "capi" / name  # type: ignore[attr-defined]
    try:
        ctypes.CDLL(str(lib))
    except OSError as e:
        text = str(e)
        return f"{text.split(':')[0].strip()} not found" if "cannot open" in text else text
    return "no usable CUDA device"


def _check_channels(card: ModelCard, shape: list, path: Path) -> None:
    """The graph's input channel count must match the card's bands."""
    if len(shape) != 4:
        raise ModelError(f"{path} takes a {len(shape)}-D input; expected N x C x H x W")
    if isinstance(shape[1], int) and shape[1] != len(card.bands):
        raise ModelError(f"{path}: the graph takes {shape[1]} channels but its card lists {len(card.bands)} bands")
    if isinstance(shape[2], int) and shape[2] != card.tile_size:
        raise ModelError(f"{path}: the graph takes fixed {shape[2]} px tiles but its card says {card.tile_size}")


def _as_probabilities(out: np.ndarray, card: ModelCard, in_shape: tuple[int, ...]) -> np.ndarray:
    """Model output as float32 class probabilities (softmax applied to logits, others clipped to 0..1)."""
    out = out.astype(np.float32, copy=False)
    expected = (in_shape[0], len(card.classes), *in_shape[2:])
    if out.shape != expected:
        raise ModelError(f"model output has shape {out.shape} for an input of {tuple(in_shape)}; expected "
                         f"{expected} (class probabilities at the input's size)")
    check_finite(out, card)
    if card.output == "logits":
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
        return out
    return np.clip(out, 0.0, 1.0, out=out)


def check_finite(out: np.ndarray, card: ModelCard) -> None:
    """Raise ModelError if a model's output holds NaN or infinity (broken weights): never a map of garbage."""
    if not np.isfinite(out).all():
        raise ModelError(f"model '{card.name}' returned NaN or infinite values (its weights are broken or it "
                         "overflowed); nothing was written: re-export or retrain the model")


class TorchModel:
    """A PyTorch network run with torch: a training checkpoint (dict with "arch", "card", "state_dict") read from
    ``path``, or (with :meth:`of_net`) a network in memory, such as the one being trained."""

    def __init__(self, path: Path, device: str = "auto") -> None:
        try:
            from aerialseg.nets import build_model, load_checkpoint
        except ImportError as e:
            raise MissingExtra(f"running the PyTorch checkpoint {path.name}", "train", e.name) from None
        try:
            ckpt = load_checkpoint(path)
            card = ModelCard.from_dict(ckpt["card"], str(path))
            net = build_model(ckpt["arch"])
            net.load_state_dict(ckpt["state_dict"])
        except ModelError:
            raise
        except Exception as e:  # torch raises many types for a bad file
            raise ModelError(f"{path} is not a readable AerialSeg checkpoint ({type(e).__name__}: {e})") from None
        self._use(net, card, device)
        torch = self._torch
        log.info("runtime: PyTorch %s on %s (%s)", torch.__version__, self.device.upper(),
                 "CUDA GPU found" if self.device == "cuda" else "CPU requested" if device == "cpu" else "no CUDA GPU")

    @classmethod
    def of_net(cls, net: Any, card: ModelCard, device: str) -> TorchModel:
        """Run ``net`` (a torch module returning logits; put in eval mode) as a model with ``card``."""
        model = cls.__new__(cls)
        model._use(net, card, device)
        return model

    def _use(self, net: Any, card: ModelCard, device: str) -> None:
        import torch

        cuda = torch.cuda.is_available()
        if device == "cuda" and not cuda:
            raise ModelError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
        self.card, self.net, self._torch = card, net, torch
        self.device = "cuda" if cuda and device != "cpu" else "cpu"
        self.net.to(self.device).eval()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device == "cuda"):
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            probs = torch.softmax(self.net(x).float(), dim=1).cpu().numpy()
        check_finite(probs, self.card)  # softmax turns infinite logits into NaN too
        return probs
