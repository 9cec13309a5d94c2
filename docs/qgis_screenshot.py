"""Screenshots of the aerialseg:map dialog and of the QGIS window after a run (for docs/), in a real QGIS window.

Run from the repository root (QGIS, xvfb and the plugin installed into a throw-away profile):

    QGIS_CUSTOM_CONFIG_PATH=/tmp/shot bash scripts/install_qgis_plugin.sh
    QGIS_CUSTOM_CONFIG_PATH=/tmp/shot xvfb-run -a -s "-screen 0 1400x1000x24" \
        qgis --nologo --noversioncheck --code docs/qgis_screenshot.py

Environment: SHOT_INPUT (the image; default the Dutch orthophoto of ../shared/data), SHOT_GSD (Input pixel size
in metres, for an image without georeferencing), SHOT_NAME (the screenshots' names: qgis_<name>_dialog.png and
qgis_<name>_canvas.jpg; default map), SHOT_OUT (where the outputs are written; default a temporary folder),
SHOT_DOCS (default docs). The canvas screenshot is taken after the outputs are loaded as the dialog loads them;
the message bar's messages (a red bar: an error) are written to <SHOT_OUT>/messages.txt (empty: none).
"""

import os
import tempfile
from pathlib import Path

import processing
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QSize, Qt, QTimer
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface

DOCS = Path(os.environ.get("SHOT_DOCS", "docs")).absolute()
ORTHO = os.environ.get("SHOT_INPUT", "../shared/data/rasters/nl_aerial_rd_new_1210x718.tif")
GSD = os.environ.get("SHOT_GSD", "")
NAME = os.environ.get("SHOT_NAME", "map")
OUT = Path(os.environ.get("SHOT_OUT") or tempfile.mkdtemp(prefix="aerialseg-shot-"))

layer = QgsRasterLayer(str(Path(ORTHO).absolute()), Path(ORTHO).stem)
QgsProject.instance().addMapLayer(layer)
params = {"INPUT": layer.id(), "OUTPUT_RASTER": str(OUT / f"{layer.name()}_landcover.tif"),
          "OUTPUT_VECTOR": str(OUT / f"{layer.name()}_features.gpkg"), **({"INPUT_GSD": float(GSD)} if GSD else {})}
iface.mainWindow().resize(QSize(1400, 1000))
dialog = processing.createAlgorithmDialog("aerialseg:map", params)
dialog.resize(QSize(1000, 760))
dialog.move(0, 0)
dialog.show()


def open_model_list() -> None:
    """Drop the Model list down, so the screenshot shows the models."""
    wrapper = dialog.mainWidget().wrappers.get("MODEL")
    if wrapper is not None and hasattr(wrapper, "_combo"):
        wrapper._combo.showPopup()


def grab_dialog() -> None:
    screen = QGuiApplication.primaryScreen().grabWindow(0)  # the dialog with the list dropped down
    screen.copy(dialog.frameGeometry()).save(str(DOCS / f"qgis_{NAME}_dialog.png"))
    dialog.close()
    layers = iface.mainWindow().findChild(QDockWidget, "Layers")
    if layers is not None:
        iface.mainWindow().resizeDocks([layers], [420], Qt.Horizontal)
    processing.runAndLoadResults("aerialseg:map", params)  # loads the outputs the way the dialog does
    iface.mapCanvas().setExtent(layer.extent())
    iface.mapCanvas().refresh()
    QTimer.singleShot(8000, grab_window)  # let the canvas draw


def grab_window() -> None:
    iface.mainWindow().grab().save(str(DOCS / f"qgis_{NAME}_canvas.jpg"), "JPG", 85)
    bar = [w.text() if hasattr(w, "text") else str(w) for w in iface.messageBar().items()]
    (OUT / "messages.txt").write_text("\n".join(bar) + "\n")
    QgsApplication.exit(0)


QTimer.singleShot(5000, open_model_list)  # let the dialog lay out and the model list load
QTimer.singleShot(6500, grab_dialog)
