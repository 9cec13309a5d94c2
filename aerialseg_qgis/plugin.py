"""The QGIS plugin: registers the AerialSeg Processing provider (toolbox, Model Designer, qgis_process)."""

from qgis.core import QgsApplication


class AerialSegPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None

    def initProcessing(self) -> None:
        """Called by QGIS and by qgis_process (metadata: hasProcessingProvider=yes)."""
        if self.provider is None:
            from .provider import AerialSegProvider

            self.provider = AerialSegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
