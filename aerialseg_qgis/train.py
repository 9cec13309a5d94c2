"""aerialseg:train: image + mask raster (or labelled polygons) -> an ONNX model with its card.

The image and a mask raster (warped onto the image grid as a VRT, no pixel copies) become the engine's
folder data set; label polygons go to the engine as they are (its vector data set rasterises them on
the fly, in any CRS, class ids or names). The bottom part of the image is held out for validation.
``aerialseg train`` trains (resumable: re-run with the same run folder and options to continue) and the
engine's exporter writes the best epoch as ONNX with its card.
"""

import shlex
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
    QgsUnitTypes,
)

from .base import DEVICES, AerialSegAlgorithm, given, tr

# The engine's architectures (aerialseg.nets.ARCHITECTURES, which QGIS's Python cannot import: torch), in its order.
ARCHITECTURES = ("unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "pan",
                 "upernet", "segformer", "dpt")
OPTIMIZERS = ("adamw", "sgd")  # aerialseg.trainconfig.OPTIMIZERS
SCHEDULERS = ("onecycle", "cosine", "exponential", "plateau")  # aerialseg.trainconfig.SCHEDULERS
UNLABELLED = (("The first class (e.g. background)", 0), ("Ignored (not learnt from)", 255))


class TrainAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, GROUP, ICON = "train", "Train a model", "models", "train.svg"
    HELP = ("Trains a land-cover segmentation model (U-Net, DeepLabV3+ or any other segmentation-models-pytorch "
            "architecture, from scratch) on an image and its "
            "labels, and writes it as an ONNX model with its model card (classes, colours, bands, "
            "normalisation, ground resolution, validation scores), ready for Classify land cover.\n\n"
            "Labels are a mask raster of class ids (0, 1, 2 ... in the order of Class names; 255 = not labelled), "
            "or a polygon layer with a class field (ids or class names). The bottom part of the image is held "
            "out for validation. Training needs the engine's training extras (PyTorch); a GPU makes it much "
            "faster. Re-running with the same run folder and options resumes an interrupted run.")

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer("INPUT", tr("Training image")),
                 "The image to learn from (3 bands, e.g. an RGB orthophoto).")
        self.add(QgsProcessingParameterRasterLayer("MASK", tr("Mask raster (class ids)"), optional=True),
                 "Class id of each pixel (0 = first class; 255 or ids beyond the classes = not labelled); warped "
                 "onto the image grid. Give this or Label polygons.")
        self.add(QgsProcessingParameterVectorLayer("LABELS", tr("Label polygons"), [QgsProcessing.TypeVectorPolygon],
                                                   optional=True),
                 "Polygons of the classes, instead of a mask raster; rasterised onto the image grid.")
        self.add(QgsProcessingParameterField("LABEL_FIELD", tr("Class field"), parentLayerParameterName="LABELS",
                                             optional=True),
                 "The field of Label polygons holding each polygon's class: an id (0, 1, ...) or a class name.")
        self.add(QgsProcessingParameterEnum("UNLABELLED", tr("Pixels outside the polygons"),
                                            [tr(t) for t, _ in UNLABELLED], defaultValue=0),
                 "With Label polygons: 0 they belong to the first class, 1 they are ignored.")
        self.add(QgsProcessingParameterString("CLASS_NAMES", tr("Class names (id order)"),
                                              defaultValue="background,building,road,water"),
                 "Comma-separated class names; the first is id 0.")
        self.add(QgsProcessingParameterString("MODEL_NAME", tr("Model name"), defaultValue="my-model"),
                 "The name in the model card.")
        self.add(QgsProcessingParameterNumber("EPOCHS", tr("Epochs"), QgsProcessingParameterNumber.Integer,
                                              defaultValue=30, minValue=1),
                 "Training passes (each over Chips per epoch random chips); training stops earlier when the "
                 "validation score stops improving.")
        self.add(QgsProcessingParameterNumber("VALIDATION", tr("Validation share (%)"),
                                              QgsProcessingParameterNumber.Integer, defaultValue=20, minValue=5,
                                              maxValue=50),
                 "Percentage of the image rows, at the bottom, held out to score the model after each epoch.")
        self.add(QgsProcessingParameterEnum("DEVICE", tr("Device"), [tr(d) for d, _ in DEVICES], defaultValue=0),
                 "Where training runs: 0 automatic (the CUDA GPU when PyTorch sees one), 1 CPU, 2 GPU.")
        self.add(QgsProcessingParameterEnum("ARCH", tr("Architecture"), list(ARCHITECTURES), defaultValue=0),
                 "The network: " + ", ".join(f"{i} {a}" for i, a in enumerate(ARCHITECTURES)) + ".", advanced=True)
        self.add(QgsProcessingParameterString("ENCODER", tr("Encoder"), defaultValue="resnet18"),
                 "The encoder network (a segmentation-models-pytorch encoder name).", advanced=True)
        self.add(QgsProcessingParameterEnum("OPTIMIZER", tr("Optimizer"), list(OPTIMIZERS), defaultValue=0),
                 "0 AdamW; 1 SGD with Nesterov momentum (no weight decay on biases and normalisation layers).",
                 advanced=True)
        self.add(QgsProcessingParameterEnum("SCHEDULER", tr("Learning-rate schedule"), list(SCHEDULERS),
                                            defaultValue=0),
                 "0 one-cycle, 1 cosine, 2 exponential decay per epoch, 3 halved when validation mIoU stalls.",
                 advanced=True)
        for name, label, default, minimum, help_text in (
                ("CHIP", "Chip size (pixels)", 256, 32, "Side of the random training chips (a multiple of 32)."),
                ("BATCH_SIZE", "Batch size (chips)", 8, 1, "Chips per training step."),
                ("CHIPS_PER_EPOCH", "Chips per epoch", 480, 1, "Random chips drawn per epoch.")):
            self.add(QgsProcessingParameterNumber(name, tr(label), QgsProcessingParameterNumber.Integer,
                                                  defaultValue=default, minValue=minimum), help_text, advanced=True)
        self.add(QgsProcessingParameterNumber("MAX_MINUTES", tr("Time limit (minutes)"),
                                              QgsProcessingParameterNumber.Double, optional=True, minValue=0),
                 "Stop after this long (re-run with the same run folder to continue). Empty: no limit.", advanced=True)
        self.add(QgsProcessingParameterString("EXTRA", tr("Additional engine options"), defaultValue="", optional=True),
                 "More 'aerialseg train' options, e.g. --lr 0.001 --loss focal+dice --encoder-depth 4 (see "
                 "aerialseg train --help).", advanced=True)
        self.add(QgsProcessingParameterFileDestination("OUTPUT", tr("Model"), fileFilter="ONNX models (*.onnx)"),
                 "The ONNX model to write (with its model card inside).")
        self.add(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", tr("Run folder"), optional=True,
                                                         createByDefault=False),
                 "Where the run keeps its data set, checkpoints, per-epoch history and training curves. Give a "
                 "folder to keep them and to resume an interrupted run; empty: a temporary folder.")
        self.addOutput(QgsProcessingOutputNumber("MIOU", tr("Validation mean IoU")))

    def processAlgorithm(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if Path(output).suffix.lower() != ".onnx":
            raise QgsProcessingException(f"Model: choose a file name ending in .onnx instead of '{output}'.")
        names = [n.strip() for n in self.parameterAsString(parameters, "CLASS_NAMES", context).split(",") if n.strip()]
        if len(names) < 2:
            raise QgsProcessingException("Class names: give at least two comma-separated class names, in id order.")
        name = self.parameterAsString(parameters, "MODEL_NAME", context) or "my-model"
        run = Path(self.parameterAsString(parameters, "OUTPUT_FOLDER", context) or
                   QgsProcessingUtils.generateTempFilename("training_run"))
        image = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if image is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, "INPUT"))
        source = self.input_raster(parameters, "INPUT", context, feedback)
        args = ["train", *self._dataset(parameters, context, feedback, source, names, run / "data"),
                "--class-names", ",".join(names),
                "--out", run / "run", "--name", name,
                "--epochs", self.parameterAsInt(parameters, "EPOCHS", context),
                "--device", DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)][1],
                "--arch", ARCHITECTURES[self.parameterAsEnum(parameters, "ARCH", context)],
                "--encoder", self.parameterAsString(parameters, "ENCODER", context) or "resnet18",
                "--optimizer", OPTIMIZERS[self.parameterAsEnum(parameters, "OPTIMIZER", context)],
                "--scheduler", SCHEDULERS[self.parameterAsEnum(parameters, "SCHEDULER", context)],
                "--chip", self.parameterAsInt(parameters, "CHIP", context),
                "--batch-size", self.parameterAsInt(parameters, "BATCH_SIZE", context),
                "--chips-per-epoch", self.parameterAsInt(parameters, "CHIPS_PER_EPOCH", context), "--no-progress"]
        gsd = _ground_resolution(image)
        if gsd:
            args += ["--gsd", repr(gsd)]
        if given(parameters, "MAX_MINUTES"):
            args += ["--max-minutes", repr(self.parameterAsDouble(parameters, "MAX_MINUTES", context))]
        args += shlex.split(self.parameterAsString(parameters, "EXTRA", context) or "")
        trained = self.engine(args, feedback, (0.0, 95.0), progress_pattern=r"\bepoch (\d+)/(\d+)\b")
        best = trained.get("best_checkpoint")
        if not best:
            raise QgsProcessingException(f"AerialSeg: training finished without a best checkpoint in {run / 'run'} "
                                         "(no epoch scored on labelled validation pixels).")
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        card = self.engine(["export", best, output, "--name", name], feedback, (95.0, 100.0)).get("card") or {}
        miou = (card.get("metrics") or {}).get("validation", {}).get("miou")
        feedback.pushInfo(f"model: {output} ({', '.join(names)}); validation mIoU {miou}")
        return {"OUTPUT": output, "OUTPUT_FOLDER": str(run), "MIOU": miou}

    def _dataset(self, parameters, context, feedback, source: str, names: list, data: Path) -> list:
        """The engine's data set options: the image with its mask raster (warped onto the image grid) as a
        folder data set, or with the label polygons as a vector data set (rasterised by the engine)."""
        from osgeo import gdal

        share = ["--val-fraction", repr(self.parameterAsInt(parameters, "VALIDATION", context) / 100)]
        if given(parameters, "MASK"):
            for folder in ("images", "masks"):
                (data / folder).mkdir(parents=True, exist_ok=True)
            ds = gdal.Open(source)
            if ds is None:
                raise QgsProcessingException(f"Cannot read the training image {source}: {gdal.GetLastErrorMsg()}")
            gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
            bounds = (gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3])
            mask = self.input_raster(parameters, "MASK", context, feedback)
            if gdal.Translate(str(data / "images" / "area.vrt"), ds, format="VRT") is None or gdal.Warp(
                    str(data / "masks" / "area.vrt"), mask, format="VRT", outputBounds=bounds, width=w, height=h,
                    dstSRS=ds.GetProjection() or None, resampleAlg="near") is None:
                raise QgsProcessingException(f"Cannot put the mask on the image grid: {gdal.GetLastErrorMsg()}")
            return ["--dataset", "folder", "--images", data / "images", "--masks", data / "masks", *share]
        if not given(parameters, "LABELS"):
            raise QgsProcessingException("Give the labels: a Mask raster (class ids) or Label polygons with a Class "
                                         "field.")
        field = self.parameterAsString(parameters, "LABEL_FIELD", context)
        if not field:
            raise QgsProcessingException("Label polygons need a Class field (class ids or class names).")
        path, layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, "LABELS", context, ["gpkg", "shp", "geojson", "fgb", "sqlite"], "gpkg", feedback)
        unlabelled = names[0] if UNLABELLED[self.parameterAsEnum(parameters, "UNLABELLED", context)][1] == 0 \
            else "ignore"
        return ["--dataset", "vector", "--images", source, "--labels", path, "--label-field", field,
                *(["--label-layer", layer] if layer else []), "--unlabelled", unlabelled, *share]


def _ground_resolution(layer) -> float:
    """The image's pixel size in metres when its CRS is in metres (else 0: the card says 'any resolution')."""
    if layer.crs().isValid() and layer.crs().mapUnits() == QgsUnitTypes.DistanceMeters:
        return round((layer.rasterUnitsPerPixelX() + layer.rasterUnitsPerPixelY()) / 2, 6)
    return 0.0
