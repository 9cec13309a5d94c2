"""aerialseg:evaluate: a class raster against a reference -> per-class IoU/F1, accuracy, confusion matrix."""

import html
import json
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import AerialSegAlgorithm, tr


class EvaluateAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, GROUP, ICON = "evaluate", "Evaluate against a reference", "models", "evaluate.svg"
    HELP = ("Compares a land-cover class raster with a reference raster on the same grid: per-class IoU, F1, "
            "precision and recall, overall pixel accuracy, mean IoU and the confusion matrix. Pixels without "
            "data in either raster are left out.\n\n"
            "The report is an HTML page (shown in the Results Viewer) or JSON, by the file name's extension.")

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer("INPUT", tr("Class raster")),
                 "The classification to score: class ids, 255 = no data (as written by Classify land cover).")
        self.add(QgsProcessingParameterRasterLayer("REFERENCE", tr("Reference raster")),
                 "The ground truth on the same grid: class ids, or class colours (see Colour-coded reference).")
        self.add(QgsProcessingParameterString("CLASSES", tr("Classes"), defaultValue="", optional=True),
                 "The classes, in id order: empty for the class raster's own class names; a preset (dubai, "
                 "landcoverai, potsdam); a model (.onnx) whose card lists them; or comma-separated names.")
        self.add(QgsProcessingParameterBoolean("COLOUR_REFERENCE", tr("Colour-coded reference"), defaultValue=False),
                 "The reference is an RGB or palette raster in the classes' colours (preset or model card colours), "
                 "not class ids.")
        self.add(QgsProcessingParameterFileDestination("OUTPUT", tr("Report"),
                                                       fileFilter="HTML files (*.html);;JSON files (*.json)"),
                 "The report to write: .html (tables, shown in the Results Viewer) or .json (the engine's scores "
                 "and confusion matrix).")
        for name, label in (("ACCURACY", "Pixel accuracy"), ("MIOU", "Mean IoU"), ("MEAN_F1", "Mean F1")):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def processAlgorithm(self, parameters, context, feedback):
        prediction = self.input_raster(parameters, "INPUT", context, feedback)
        reference = self.input_raster(parameters, "REFERENCE", context, feedback)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if Path(output).suffix.lower() not in (".html", ".htm", ".json"):
            raise QgsProcessingException(f"Report: choose a file name ending in .html or .json instead of '{output}'.")
        classes = (self.parameterAsString(parameters, "CLASSES", context) or "").strip() or _class_names(prediction)
        args = ["evaluate", prediction, reference, "--classes", classes]
        if self.parameterAsBoolean(parameters, "COLOUR_REFERENCE", context):
            args.append("--colour-reference")
        result = self.engine(args, feedback)  # the scores: the engine's result line
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        report = json.dumps(result, indent=1) if Path(output).suffix.lower() == ".json" else report_html(result)
        Path(output).write_text(report, encoding="utf-8")
        feedback.pushInfo(f"pixel accuracy {_fmt(result.get('pixel_accuracy'))}, mean IoU {_fmt(result.get('miou'))}, "
                          f"mean F1 {_fmt(result.get('mean_f1'))}")
        return {"OUTPUT": output, "ACCURACY": result.get("pixel_accuracy"), "MIOU": result.get("miou"),
                "MEAN_F1": result.get("mean_f1")}


def _class_names(raster: str) -> str:
    """The class names of an AerialSeg class raster (its class table, else its categories), in id order."""
    from osgeo import gdal

    ds = gdal.Open(raster)
    names = []
    if ds is not None:
        try:
            table = {int(c["id"]): str(c["name"]) for c in json.loads(ds.GetMetadataItem("AERIALSEG_CLASSES") or "[]")}
            names = [table.get(i, f"class_{i}") for i in range(max(table) + 1)] if table else []
        except (ValueError, TypeError, KeyError):
            names = []
        band = ds.GetRasterBand(1)
        band.GetDescription()  # GDAL reads the .aux.xml categories lazily
        names = names or list(band.GetCategoryNames() or [])
    ds = None
    if not names:
        raise QgsProcessingException(f"{raster} has no class names; give Classes (a preset, a model .onnx or "
                                     "comma-separated names in id order).")
    return ",".join(n.replace(",", " ") for n in names)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def report_html(result: dict) -> str:
    """A small self-contained HTML page of the scores and the confusion matrix."""
    per_class = result.get("per_class", {})
    names = list(per_class)
    rows = "".join(f"<tr><th>{html.escape(n)}</th>" + "".join(f"<td>{_fmt(s.get(k))}</td>" for k in
                   ("iou", "f1", "precision", "recall")) + f"<td>{s.get('support', 0)}</td></tr>"
                   for n, s in per_class.items())
    matrix = result.get("confusion_matrix", [])
    cells = ""
    for name, row in zip(names, matrix):
        total = max(sum(row), 1)
        cells += f"<tr><th>{html.escape(name)}</th>" + "".join(
            f"<td style='background:rgba(29,79,153,{v / total:.2f});color:{'#fff' if v / total > .5 else '#000'}'>"
            f"{v}</td>" for v in row) + "</tr>"
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AerialSeg evaluation</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}</style></head><body><h2>AerialSeg evaluation</h2>"
        f"<p>prediction: {html.escape(str(result.get('prediction', '')))}<br>"
        f"reference: {html.escape(str(result.get('reference', '')))}</p>"
        f"<p><b>pixel accuracy</b> {_fmt(result.get('pixel_accuracy'))} &nbsp; <b>mean IoU</b> "
        f"{_fmt(result.get('miou'))} &nbsp; <b>mean F1</b> {_fmt(result.get('mean_f1'))} &nbsp; "
        f"<b>pixels</b> {result.get('pixels', 0)}</p>"
        "<table><tr><th>class</th><th>IoU</th><th>F1</th><th>precision</th><th>recall</th><th>support (px)</th></tr>"
        f"{rows}</table><h3>Confusion matrix</h3><p>rows: reference, columns: predicted (pixels)</p>"
        f"<table><tr><th></th>{head}</tr>{cells}</table></body></html>\n"
    )
