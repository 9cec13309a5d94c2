"""Screenshot of the aerialseg:map Processing dialog in a real QGIS window (for docs/qgis_map_dialog.png).

Run from the repository root (QGIS, xvfb and the plugin installed into a throw-away profile):

    QGIS_CUSTOM_CONFIG_PATH=/tmp/shot bash scripts/install_qgis_plugin.sh
    QGIS_CUSTOM_CONFIG_PATH=/tmp/shot xvfb-run -a -s "-screen 0 1400x1000x24" \
        qgis --nologo --noversioncheck --code docs/qgis_screenshot.py
"""

import os
from pathlib import Path

import processing
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QSize, QTimer

DOCS = Path(os.environ.get("SHOT_DOCS", "docs")).absolute()
ORTHO = os.environ.get("SHOT_INPUT", "../shared/data/rasters/nl_aerial_rd_new_1210x718.tif")

layer = QgsRasterLayer(str(Path(ORTHO).absolute()), Path(ORTHO).stem)
QgsProject.instance().addMapLayer(layer)
dialog = processing.createAlgorithmDialog("aerialseg:map", {
    "INPUT": layer.id(), "OUTPUT_RASTER": "/home/user/maps/nl_landcover.tif",
    "OUTPUT_VECTOR": "/home/user/maps/nl_features.gpkg"})
dialog.resize(QSize(1000, 760))
dialog.show()


def grab() -> None:
    dialog.grab().save(str(DOCS / "qgis_map_dialog.png"))
    QgsApplication.exit(0)


QTimer.singleShot(6000, grab)  # let the dialog lay out and the model list load
