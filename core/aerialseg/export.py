"""Export a training checkpoint to ONNX with the model card inside.

The graph takes ``image`` (float32 N x C x H x W, normalised as the card says) and returns
``probabilities`` (float32 N x K x H x W, softmax included), with dynamic batch, height and width
(H and W must be multiples of 32). After writing, ONNX Runtime and PyTorch are run on the same
sample and must agree, or the export fails and no file is left behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg.card import ModelCard, write_card
from aerialseg.errors import ModelError, OutputError, first_line

OPSET = 17


class _WithSoftmax(nn.Module):
    """Wraps a logits network so that it returns class probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)


def export_onnx(
    checkpoint: str | Path,
    onnx_path: str | Path,
    *,
    name: str | None = None,
    card_updates: dict[str, Any] | None = None,
    sample_size: int = 256,
    atol: float = 1e-4,
    fp16_weights: bool = False,
) -> ModelCard:
    """Write ``checkpoint`` as an ONNX model with its card; returns the card written.

    Args:
        checkpoint: A ``best.pt``/``last.pt`` written by :mod:`aerialseg.train`.
        onnx_path: Output ``.onnx`` file (replaced atomically).
        name: Model name for the card (default: the checkpoint's).
        card_updates: Card fields to override (e.g. ``{"licence": ...}``).
        sample_size: Side of the random parity-check input (a multiple of 32).
        atol: Largest allowed absolute difference of probabilities between ORT and PyTorch.
        fp16_weights: Store the weights as float16 (half the file; still computed in float32, the parity
            check then allows a difference of ``max(atol, 2e-3)``).

    Raises:
        ModelError: unreadable checkpoint, or ONNX Runtime disagrees with PyTorch.
        OutputError: the file cannot be written.
    """
    from aerialseg.nets import build_model, load_checkpoint

    ckpt = load_checkpoint(Path(checkpoint))
    try:
        card_dict = {**ckpt["card"], "output": "probabilities", **(card_updates or {})}
        if name:
            card_dict["name"] = name
        card = ModelCard.from_dict(card_dict, str(checkpoint))
        net = build_model(ckpt["arch"])
        net.load_state_dict(ckpt["state_dict"])
    except KeyError as e:
        raise ModelError(f"{checkpoint} is not an AerialSeg training checkpoint (no {e})") from None
    except (RuntimeError, ValueError, TypeError) as e:  # weights that do not fit the architecture
        raise ModelError(f"{checkpoint}: the weights do not fit its architecture ({first_line(e)})") from None
    model = _WithSoftmax(net).eval()
    out = Path(onnx_path)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _torch_export(model, tmp, len(card.bands))
        if fp16_weights:
            _store_weights_fp16(tmp)
            atol = max(atol, 2e-3)
        write_card(tmp, card)
        _check_parity(model, tmp, len(card.bands), sample_size, atol)
        tmp.replace(out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return card


def _torch_export(model: nn.Module, path: Path, channels: int) -> None:
    dummy = torch.zeros(1, channels, 64, 64)
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "probabilities": {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices (onnxscript is not needed)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )


def _store_weights_fp16(path: Path) -> None:
    """Rewrite the float32 weights of an ONNX file as float16 initializers, each cast back to float32.

    The graph still computes in float32 (ONNX Runtime folds the casts once, when the session starts), so
    speed is unchanged and the probabilities move by ~1e-4; the file is half the size.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph, inits, casts = model.graph, [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < 16:
            inits.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        inits.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(inits)
    graph.node.extend(nodes)
    onnx.save(model, str(path))


def _check_parity(model: nn.Module, path: Path, channels: int, size: int, atol: float) -> None:
    """Run ORT and PyTorch on one random input (two sizes) and raise ModelError if they differ."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in ((2, channels, size, size), (1, channels, size // 2, size + 32)):
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(["probabilities"], {"image": x})[0]
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if diff > atol:
            raise ModelError(
                f"ONNX Runtime and PyTorch disagree on a {shape} input (max difference {diff:.2e} > "
                f"{atol:.0e}); the export is wrong, not written"
            )
