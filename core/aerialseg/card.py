"""The model card: what a model predicts and what input it expects.

A card travels inside the ONNX file as JSON under the metadata key ``aerialseg_card``. The same file
also carries the keys the Deepness QGIS plugin reads (``model_type``, ``class_names``, ``resolution``
in cm/px, ``tile_size``, ``tiles_overlap`` in percent, ``standardization_mean``/``_std``), so models
move between the two tools; a Deepness segmentation model without our key is read from those.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aerialseg.errors import ModelError

CARD_KEY = "aerialseg_card"
NODATA_CLASS = 255  # class value written where the input has no data
MIN_TILE, MAX_TILE = 16, 4096  # sensible model tile sides, px
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# Colours for models that bring none (Deepness models): distinct, readable on a map.
FALLBACK_COLOURS = (
    "#E6194B", "#3CB44B", "#4363D8", "#FFE119", "#F58231", "#911EB4",
    "#46F0F0", "#F032E6", "#BCF60C", "#FABEBE", "#008080", "#9A6324",
)


@dataclass(frozen=True)
class ClassInfo:
    """One output class: its id (the model's output channel), name and display colour."""

    id: int
    name: str
    color: str  # "#RRGGBB"

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) tuple of 0-255 ints."""
        return tuple(int(self.color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to run a model correctly and to say what it is.

    Input pixels are normalised as ``((value / scale) - mean) / std`` per band, ``bands`` being the
    1-based band numbers read from the input raster in model channel order.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    bands: tuple[int, ...] = (1, 2, 3)
    scale: float = 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    gsd_m: float | None = None  # ground sample distance the model was trained at; None = any
    tile_size: int = 512
    overlap: int = 64  # pixels shared by neighbouring tiles
    output: str = "probabilities"  # what the graph returns: "probabilities" or "logits"
    architecture: str = ""
    description: str = ""
    licence: str = ""
    training_data: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    version: str = "1"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def class_names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in self.classes]

    def class_by_name(self, name: str) -> ClassInfo:
        """Return the class called ``name`` (case-insensitive) or raise a ModelError."""
        for c in self.classes:
            if c.name.lower() == name.lower():
                return c
        raise ModelError(f"model '{self.name}' has no class '{name}'; its classes are: {', '.join(self.class_names)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the card."""
        d = dataclasses.asdict(self)
        d["metrics"] = dict(self.metrics)
        return d

    def to_json(self) -> str:
        """The card as JSON text (what is stored in the ONNX metadata)."""
        return json.dumps(self.to_dict(), indent=1)

    def to_metadata(self) -> dict[str, str]:
        """All ONNX metadata entries for this card: ours plus the Deepness keys."""
        deepness = {
            "model_type": "Segmentor",
            "class_names": {str(c.id): c.name for c in self.classes},
            "tile_size": self.tile_size,
            "tiles_size": self.tile_size,  # the spelling in Deepness's docs
            "tiles_overlap": round(100 * self.overlap / self.tile_size),
            "standardization_mean": list(self.mean),
            "standardization_std": list(self.std),
        }
        if self.gsd_m is not None:
            deepness["resolution"] = round(self.gsd_m * 100, 4)
        meta = {k: json.dumps(v) for k, v in deepness.items()}
        meta[CARD_KEY] = self.to_json()
        return meta

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "card") -> ModelCard:
        """Build and validate a card from a dict, with a clear ModelError on any problem."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"invalid model card in {source}: unknown field(s) {', '.join(unknown)}")
        missing = [k for k in ("name", "classes") if k not in d]
        if missing:
            raise ModelError(f"invalid model card in {source}: missing field(s) {', '.join(missing)}")
        try:
            args = dict(d)
            args["classes"] = tuple(ClassInfo(int(c["id"]), str(c["name"]), str(c["color"])) for c in d["classes"])
            for key in ("bands", "mean", "std"):
                if key in args:
                    args[key] = tuple(args[key])
            return cls(**args)
        except ModelError as e:
            raise ModelError(f"invalid model card in {source}: {e}") from None
        except (TypeError, KeyError, ValueError) as e:
            raise ModelError(f"invalid model card in {source}: {e!r}") from None

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str, n_channels: int | None = None) -> ModelCard:
        """Read a card from ONNX metadata: ours if present, else the Deepness keys."""
        if CARD_KEY in meta:
            try:
                d = json.loads(meta[CARD_KEY])
            except json.JSONDecodeError as e:
                raise ModelError(f"invalid model card in {source}: not JSON ({e.msg})") from None
            if not isinstance(d, dict):
                raise ModelError(f"invalid model card in {source}: expected a JSON object")
            return cls.from_dict(d, source)
        if "class_names" in meta:
            return _from_deepness(meta, source, n_channels)
        raise ModelError(
            f"{source} has no model card: export it with `aerialseg` (or add Deepness metadata: "
            "model_type, class_names, resolution, tile_size)"
        )


def _validate(card: ModelCard) -> None:
    """Raise ModelError if the card is inconsistent."""
    _validate_types(card)
    if not card.classes:
        raise ModelError("a card needs at least one class")
    if [c.id for c in card.classes] != list(range(len(card.classes))):
        raise ModelError("class ids must be 0, 1, 2, ... in order (they are the model's output channels)")
    if len(card.classes) > NODATA_CLASS:
        raise ModelError(f"at most {NODATA_CLASS} classes are supported")
    for c in card.classes:
        if not c.name.strip():
            raise ModelError(f"class {c.id} has an empty name")
        if not _HEX_COLOUR.match(c.color):
            raise ModelError(f"class '{c.name}' has colour {c.color!r}; expected '#RRGGBB'")
    if not card.bands or any(int(b) < 1 for b in card.bands):
        raise ModelError(f"bands must be 1-based band numbers, got {list(card.bands)}")
    if len(card.mean) != len(card.bands) or len(card.std) != len(card.bands):
        raise ModelError(f"mean and std need one value per band ({len(card.bands)})")
    infinite = [k for k in ("mean", "std", "scale", "gsd_m") if not all(map(math.isfinite, _numbers(card, k)))]
    if infinite:
        raise ModelError(f"{', '.join(infinite)} must be finite numbers (no NaN or Infinity)")
    if any(s <= 0 for s in card.std) or card.scale <= 0:
        raise ModelError(f"std and scale must be positive, got std {list(card.std)} and scale {card.scale}")
    if card.gsd_m is not None and not card.gsd_m > 0:
        raise ModelError(f"gsd_m must be positive metres per pixel, got {card.gsd_m}")
    if not MIN_TILE <= card.tile_size <= MAX_TILE:
        raise ModelError(f"tile_size must be >= {MIN_TILE} and <= {MAX_TILE} px, got {card.tile_size}")
    if not 0 <= card.overlap <= card.tile_size // 2:
        raise ModelError(f"field overlap must be an overlap between 0 and tile_size/2 ({card.tile_size // 2}) px, "
                         f"got {card.overlap}")
    if card.output not in ("probabilities", "logits"):
        raise ModelError(f"output must be 'probabilities' or 'logits', got {card.output!r}")


def _numbers(card: ModelCard, key: str) -> tuple[float, ...]:
    value = getattr(card, key)
    return () if value is None else tuple(value) if isinstance(value, tuple) else (value,)


def _validate_types(card: ModelCard) -> None:
    """Raise ModelError for values of the wrong type (e.g. a tile size of 64.0 in hand-written JSON)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    checks = [("tile_size", is_int(card.tile_size)), ("overlap", is_int(card.overlap)),
              ("bands", all(is_int(b) for b in card.bands)), ("scale", is_number(card.scale)),
              ("mean", all(is_number(v) for v in card.mean)), ("std", all(is_number(v) for v in card.std)),
              ("gsd_m", card.gsd_m is None or is_number(card.gsd_m)), ("name", isinstance(card.name, str))]
    wrong = [name for name, ok in checks if not ok]
    if wrong:
        raise ModelError(f"wrong value type for {', '.join(wrong)} (integers for tile_size, overlap and bands, "
                         "numbers for scale, mean, std and gsd_m)")


def _from_deepness(meta: Mapping[str, str], source: str, n_channels: int | None) -> ModelCard:
    """Build a card from the metadata keys the Deepness plugin reads."""
    try:
        values = {k: json.loads(v) for k, v in meta.items() if k in _DEEPNESS_KEYS}
        model_type = values.get("model_type", "Segmentor")
        if model_type != "Segmentor":
            raise ModelError(f"{source} is a Deepness '{model_type}' model; "
                             "only segmentation models can classify land cover")
        names = values["class_names"]
        if isinstance(names, str):  # some tools store the dict as a Python literal string
            names = json.loads(names.replace("'", '"'))
        classes = tuple(
            ClassInfo(int(k), str(v), FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)])
            for i, (k, v) in enumerate(sorted(((int(k), v) for k, v in names.items())))
        )
        n = n_channels or len(values.get("standardization_mean", [0, 0, 0]))
        tile = int(values.get("tile_size", values.get("tiles_size", 512)))
        resolution = values.get("resolution")
        return ModelCard(
            name=Path(source).stem,
            classes=classes,
            bands=tuple(range(1, n + 1)),
            mean=tuple(float(x) for x in values.get("standardization_mean", [0.0] * n)),
            std=tuple(float(x) for x in values.get("standardization_std", [1.0] * n)),
            gsd_m=float(resolution) / 100 if resolution else None,
            tile_size=tile,
            overlap=min(tile // 2, round(tile * float(values.get("tiles_overlap", 15)) / 100)),
            description="Deepness model",
        )
    except ModelError as e:
        if str(e).startswith(source):
            raise
        raise ModelError(f"invalid Deepness metadata in {source}: {e}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ModelError(f"invalid Deepness metadata in {source}: {e!r}") from None


_DEEPNESS_KEYS = (
    "model_type", "class_names", "resolution", "tile_size", "tiles_size", "tiles_overlap",
    "standardization_mean", "standardization_std",
)


def read_card(onnx_path: str | Path) -> ModelCard:
    """Read and validate the card stored in an ONNX file's metadata."""
    import onnx

    path = Path(onnx_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except Exception as e:  # onnx raises DecodeError and others for non-ONNX files
        raise ModelError(f"{path} is not a readable ONNX model ({type(e).__name__}); re-export it") from None
    if not model.graph.node or not model.graph.input:
        raise ModelError(f"{path} is not a readable ONNX model (it has no graph; an interrupted download?)")
    meta = {p.key: p.value for p in model.metadata_props}
    return ModelCard.from_metadata(meta, str(path), _input_channels(model))


def write_card(onnx_path: str | Path, card: ModelCard) -> None:
    """Store ``card`` (and the Deepness keys) in the metadata of an ONNX file, in place."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    entries = card.to_metadata()
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    tmp = path.with_name(f".{path.name}.partial")
    onnx.save(model, str(tmp))
    tmp.replace(path)


def _input_channels(model: Any) -> int | None:
    """Channel count of the first graph input (NCHW), if it is fixed."""
    if not model.graph.input:
        return None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[1].dim_value if len(dims) == 4 and dims[1].dim_value > 0 else None
