"""The Model parameter's widget in the Processing dialog: bundled models in a list, or an ONNX file.

Loaded only by the Processing GUI (through the parameter's ``widget_wrapper`` metadata); qgis_process
and processing.run never import it.
"""

from processing.gui.wrappers import DIALOG_BATCH, DIALOG_MODELER, WidgetWrapper
from qgis.core import QgsProcessingOutputString, QgsProcessingParameterString
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QToolButton, QWidget

from .base import tr
from .engine import find_engine, run_json

_models_cache: dict = {}


def bundled_models() -> list:
    """[(name, description)] from ``aerialseg models --json``; [] while there is no working engine.

    The answer is kept per engine program (and its modification time), so the list appears as soon as an engine
    is installed or updated; a failure is never kept.
    """
    try:
        program = find_engine()
        key = (str(program), program.stat().st_mtime)
        if key not in _models_cache:
            _models_cache[key] = [(m["name"], m.get("card", {}).get("description", "")) for m in
                                  run_json(["models", "--json"], timeout=30)]
        return _models_cache[key]
    except Exception:  # noqa: BLE001  no engine yet: the field still takes a name or a file
        return []


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
        combo.addItem(tr("Default model"), "")
        for name, description in bundled_models():
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        combo.lineEdit().setPlaceholderText(tr("Default model, a bundled model name or an .onnx file"))
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip(tr("Choose an ONNX model file"))
        browse.clicked.connect(lambda: self._browse(combo))
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(combo, 1)
        layout.addWidget(browse)
        self._combo = combo
        return box

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
