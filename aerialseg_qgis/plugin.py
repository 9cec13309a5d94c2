"""The QGIS plugin: registers the AerialSeg Processing provider (toolbox, Model Designer, qgis_process).

In the QGIS window it also adds Plugins > AerialSeg > Install engine… and, while no engine is found, a
message-bar hint with a button that opens the installer algorithm (never a modal popup).
"""

import contextlib

from qgis.core import Qgis, QgsApplication, QgsProcessingException
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

MENU = "&AerialSeg"
INSTALLER = "aerialseg:installengine"


class AerialSegPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None
        self.install_action = None
        self.hint = None
        self.dialog = None

    def initProcessing(self) -> None:
        """Called by QGIS and by qgis_process (metadata: hasProcessingProvider=yes)."""
        if self.provider is None:
            from .provider import AerialSegProvider

            self.provider = AerialSegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        from .base import ICONS, tr

        self.initProcessing()
        self.install_action = QAction(QIcon(str(ICONS / "aerialseg.svg")), tr("Install engine…"),
                                      self.iface.mainWindow())
        self.install_action.triggered.connect(self.open_installer)
        self.iface.addPluginToMenu(MENU, self.install_action)
        if not engine_found():
            self.show_install_hint()

    def show_install_hint(self) -> None:
        """A message-bar item: the engine is missing, with a button that opens the installer."""
        from .base import tr

        bar = self.iface.messageBar()
        self.hint = bar.createMessage("AerialSeg", tr("The AerialSeg engine is not installed yet; the AerialSeg "
                                                      "algorithms need it."))
        button = QPushButton(tr("Install engine…"))
        button.clicked.connect(self.open_installer)
        self.hint.layout().addWidget(button)
        bar.pushWidget(self.hint, Qgis.Info)

    def open_installer(self) -> None:
        """Open the installer algorithm's dialog (non-modal, like the Processing Toolbox does)."""
        from processing import createAlgorithmDialog

        self._dismiss_hint()
        self.dialog = createAlgorithmDialog(INSTALLER, {})
        if self.dialog is not None:
            self.dialog.show()

    def _dismiss_hint(self) -> None:
        if self.hint is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the user
                self.iface.messageBar().popWidget(self.hint)
            self.hint = None

    def unload(self) -> None:
        self._dismiss_hint()
        if self.install_action is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def engine_found() -> bool:
    """Whether an engine program is found (a quick look at paths; nothing is run)."""
    from .engine import find_engine

    try:
        find_engine()
    except QgsProcessingException:
        return False
    return True
