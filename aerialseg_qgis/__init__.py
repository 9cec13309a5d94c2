"""AerialSeg for QGIS: a thin Processing provider over the AerialSeg engine, which runs out of process.

This package never imports the engine (``aerialseg``), torch or onnxruntime: QGIS's Python stays as it is.
"""


def classFactory(iface):  # noqa: N802  (QGIS's name)
    from .plugin import AerialSegPlugin

    return AerialSegPlugin(iface)
