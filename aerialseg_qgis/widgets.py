"""The Model parameter's widget in the Processing dialog: bundled models in a list, or an ONNX file.

Loaded only by the Processing GUI (through the parameter's ``widget_wrapper`` metadata); qgis_process
and processing.run never import it.
"""

import re
from concurrent.futures import Future, ThreadPoolExecutor

from processing.gui.wrappers import DIALOG_BATCH, DIALOG_MODELER, WidgetWrapper
from qgis.core import QgsProcessingOutputString, QgsProcessingParameterString
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QToolButton, QWidget

from .base import tr
from .engine import find_engine, run_json

AUTOMATIC = "Automatic (by ground resolution)"
_models_cache: dict = {}  # (engine program, its modification time) -> [(name, label, description)]
_loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aerialseg-models")


def _engine_key() -> tuple:
    program = find_engine()
    return str(program), program.stat().st_mtime


def bundled_models() -> list:
    """[(name, label, description)] from ``aerialseg models --json``; [] while there is no working engine.

    The answer is kept per engine program (and its modification time), so the list appears as soon as an engine
    is installed or updated; a failure is never kept.
    """
    try:
        key = _engine_key()
        if key not in _models_cache:
            _models_cache[key] = [(m["name"], model_label(m["name"], m.get("card", {})),
                                   m.get("card", {}).get("description", "")) for m in
                                  run_json(["models", "--json"], timeout=30)]
        return _models_cache[key]
    except Exception:  # noqa: BLE001  no engine yet: the field still takes a name or a file
        return []


def cached_models() -> "list | None":
    """The model list if it is already known for the current engine (no engine run), else None."""
    try:
        return _models_cache.get(_engine_key())
    except Exception:  # noqa: BLE001  no engine: nothing to list
        return []


def models_in_background() -> Future:
    """bundled_models() run in a worker thread (``aerialseg models`` takes about a second)."""
    return _loader.submit(bundled_models)


def model_label(name: str, card: dict) -> str:
    """'<name> — <purpose>, <imagery> ~<gsd> m', e.g. 'aerial-buildings-unet-r18 — buildings, drone/aerial ~0.13 m'.

    The purpose is the start of the card's description (else its classes), the imagery the kind it names.
    """
    text = card.get("description") or ""
    purpose = re.split(r"\s+(?:in|from|for|of)\s+|\s*[(,;.]", text, maxsplit=1)[0].strip().lower()
    if not purpose:
        purpose = ", ".join(c.get("name", "") for c in card.get("classes", [])[:4] if isinstance(c, dict))
    kinds = [kind for kind, words in (("satellite", ("satellite",)), ("drone/aerial", ("drone", "aerial", "uav")))
             if any(w in text.lower() for w in words)]
    gsd = card.get("gsd_m")
    where = " ".join([*kinds[:1], f"~{gsd:g} m" if isinstance(gsd, (int, float)) else "any resolution"])
    return f"{name} — " + ", ".join(part for part in (purpose, where) if part)


class ModelWidgetWrapper(WidgetWrapper):
    """An editable list of the bundled models ('' = the default) with a button to pick an .onnx file."""

    def createWidget(self):
        if self.dialogType == DIALOG_BATCH:
            return QLineEdit()
        combo = QComboBox()
        combo.setEditable(True)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        if self.dialogType == DIALOG_MODELER:
            for value in self.dialog.getAvailableValuesOfType(QgsProcessingParameterString, QgsProcessingOutputString):
                combo.addItem(self.dialog.resolveValueDescription(value), value)
            return combo
        combo.addItem(tr(AUTOMATIC), "")
        combo.setItemData(0, tr("The bundled model whose ground resolution fits the input best (the log says which "
                                "and why)"), Qt.ItemDataRole.ToolTipRole)
        combo.lineEdit().setPlaceholderText(tr("Automatic, a bundled model name or an .onnx file"))
        self._combo = combo
        models = cached_models()
        if models is not None:
            self._add_models(models)
        else:  # the dialog opens at once; the models appear when the engine has listed them
            self._pending = models_in_background()
            self._poll = QTimer(combo)
            self._poll.timeout.connect(self._models_arrived)
            self._poll.start(100)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip(tr("Choose an ONNX model file"))
        browse.clicked.connect(lambda: self._browse(combo))
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(combo, 1)
        layout.addWidget(browse)
        return box

    def _models_arrived(self) -> None:
        if self._pending.done():
            self._poll.stop()
            self._add_models(self._pending.result())

    def _add_models(self, models: list) -> None:
        """Each bundled model once, labelled with its purpose and ground resolution; keeps the value shown."""
        value = self.value()
        for name, label, description in models:
            self._combo.addItem(label, name)
            self._combo.setItemData(self._combo.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        self.setValue(value)

    def _browse(self, combo: QComboBox) -> None:
        path, _ = QFileDialog.getOpenFileName(combo, tr("ONNX model"), "", tr("ONNX models (*.onnx);;All files (*)"))
        if path:
            combo.setEditText(path)

    def setValue(self, value):
        value = "" if value is None else str(value)
        if self.dialogType == DIALOG_BATCH:
            self.widget.setText(value)
        elif self.dialogType == DIALOG_MODELER:
            self.setComboValue(value)
        else:
            index = self._combo.findData(value)
            if index >= 0:
                self._combo.setCurrentIndex(index)
            else:
                self._combo.setEditText(value)

    def value(self):
        if self.dialogType == DIALOG_BATCH:
            return self.widget.text()
        if self.dialogType == DIALOG_MODELER:
            return self.comboValue()
        text = self._combo.currentText()
        index = self._combo.currentIndex()
        if index >= 0 and self._combo.itemText(index) == text:
            return self._combo.itemData(index)
        return text.strip()
