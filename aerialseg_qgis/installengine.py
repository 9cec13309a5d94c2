"""aerialseg:installengine: create the engine's private Python environment from inside QGIS (or qgis_process)."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsSettings,
)

from . import engine as eng
from . import installer as ins
from .base import AerialSegAlgorithm, given, tr

FLAVOURS = ("Automatic (GPU when an NVIDIA GPU with a working driver is found, else CPU)", "CPU", "GPU (NVIDIA CUDA)")
_COUNTED = ("Collecting", "Downloading", "Using cached", "Installing", "Successfully", "Processing", "Requirement")


def default_folder() -> Path:
    """<QGIS profile>/aerialseg/engine."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "aerialseg" / "engine"


def qgis_proxy() -> dict:
    """pip's proxy variables from QGIS's network settings (empty unless an HTTP proxy is configured)."""
    settings = QgsSettings()
    enabled = str(settings.value("proxy/proxyEnabled", False)).lower() in ("true", "1")
    return ins.proxy_env(enabled, *(str(settings.value(f"proxy/{k}", "") or "") for k in
                                    ("proxyType", "proxyHost", "proxyPort", "proxyUser", "proxyPassword")))


class InstallEngineAlgorithm(AerialSegAlgorithm):
    NAME, DISPLAY, GROUP, ICON = "installengine", "Install or update the AerialSeg engine", "setup", "check.svg"
    HELP = ("Creates the AerialSeg engine's own Python environment (QGIS's Python is never changed), installs the "
            "engine that ships with this plugin and its dependencies from PyPI (an internet connection is needed), "
            "makes it the engine the AerialSeg algorithms use, and checks that it works.\n\n"
            "Running it again with the same plugin version does nothing; after a plugin update it updates the "
            "engine. Cancel stops pip; a cancelled first installation removes its folder.")

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterFile("FOLDER", tr("Engine folder"), QgsProcessingParameterFile.Folder,
                                            optional=True),
                 "Where the engine's environment goes: a new or empty folder, or an engine installed before (it is "
                 "updated). Empty: the folder aerialseg/engine in your QGIS profile.")
        self.add(QgsProcessingParameterEnum("FLAVOUR", tr("Engine flavour"), [tr(f) for f in FLAVOURS],
                                            defaultValue=0),
                 "0 automatic (the GPU flavour, onnxruntime-gpu, when nvidia-smi finds an NVIDIA GPU with a working "
                 "driver; else the CPU flavour), 1 CPU only (smaller download), 2 GPU.")
        self.add(QgsProcessingParameterBoolean("TRAINING", tr("Also install training (PyTorch, large)"),
                                               defaultValue=False),
                 "Add what 'Train a model' needs (PyTorch and segmentation-models-pytorch: about 1-3 GB more).")
        self.add(QgsProcessingParameterFile("WHEEL", tr("Engine wheel"), extension="whl", optional=True),
                 "An aerialseg .whl file to install instead of the one shipped with the plugin.", advanced=True)
        for name, label in (("ENGINE", "Engine program"), ("ENGINE_FOLDER", "Engine folder"),
                            ("REPORT", "Check report")):
            self.addOutput(QgsProcessingOutputString(name, tr(label)))
        self.addOutput(QgsProcessingOutputBoolean("INSTALLED", tr("Installed or updated (false: it was up to date)")))

    def processAlgorithm(self, parameters, context, feedback):
        plan = self._plan(parameters, context, feedback)
        fresh = not (plan.target / "pyvenv.cfg").is_file()
        installed = not ins.up_to_date(plan)
        if installed:
            self._install(plan, fresh, feedback)
        else:
            feedback.pushInfo(f"The engine in {plan.target} is up to date ({plan.wheel.name}): nothing to install.")
        feedback.setProgressText(tr("Checking the engine"))
        report = self._verify(plan.target)
        eng.record_engine(plan.target)
        feedback.setProgress(100)
        feedback.pushInfo(f"AerialSeg engine ready: {ins.env_program(plan.target)} ({report}). The AerialSeg "
                          "algorithms use it from now on.")
        return {"ENGINE": str(ins.env_program(plan.target)), "ENGINE_FOLDER": str(plan.target), "REPORT": report,
                "INSTALLED": installed}

    def _plan(self, parameters, context, feedback) -> ins.Plan:
        folder = (self.parameterAsFile(parameters, "FOLDER", context) or "").strip()
        target = Path(folder).expanduser().absolute() if folder else default_folder()
        problem = ins.target_problem(target)
        if problem:
            raise QgsProcessingException(f"Engine folder: {problem}.")
        wheel = self._wheel(parameters, context)
        flavour = self.parameterAsEnum(parameters, "FLAVOUR", context)
        gpu, why = ins.gpu_available() if flavour == 0 else (flavour == 2, "chosen")
        train = self.parameterAsBoolean(parameters, "TRAINING", context)
        feedback.pushInfo(f"Engine flavour: {'GPU' if gpu else 'CPU'} ({why}); training "
                          f"{'included' if train else 'not included'}; folder {target}; wheel {wheel.name}")
        return ins.Plan(target, wheel.absolute(), gpu, train)

    def _wheel(self, parameters, context) -> Path:
        """The WHEEL parameter's file, else the wheel shipped in the plugin."""
        text = (self.parameterAsFile(parameters, "WHEEL", context) or "").strip() if given(parameters, "WHEEL") else ""
        wheel = Path(text) if text else ins.shipped_wheel()
        if wheel is None or not wheel.is_file():
            raise QgsProcessingException(
                f"Engine wheel not found: {text or ins.WHEEL_DIR / 'aerialseg-*.whl'}. This copy of the plugin "
                "carries no engine: install the plugin from its ZIP (python3 scripts/package_plugin.py builds it), "
                "or give Engine wheel an aerialseg .whl file.")
        return wheel

    def _install(self, plan: ins.Plan, fresh: bool, feedback) -> None:
        base_python = Path(sys.executable)
        if fresh:
            base_python = self._base_python(feedback)
            plan.target.mkdir(parents=True, exist_ok=True)
        ins.clear_marker(plan.target)
        commands = ins.install_commands(plan, base_python, fresh)
        try:
            for step, command in enumerate(commands):
                self._run_step(command, feedback, 90.0 * step / len(commands), 90.0 * (step + 1) / len(commands))
        except (ins.Cancelled, ins.InstallError) as e:
            if fresh:
                shutil.rmtree(plan.target, ignore_errors=True)
            if isinstance(e, ins.Cancelled):
                raise QgsProcessingException(f"Cancelled: the engine installation was stopped and {plan.target} "
                                             "removed." if fresh else "Cancelled: the engine update was stopped; run "
                                             "this algorithm again to finish it.") from None
            raise QgsProcessingException(f"AerialSeg engine installation failed: {e}. Check the internet connection "
                                         "(PyPI) and the log above, then run this algorithm again.") from None
        ins.write_marker(plan)

    def _base_python(self, feedback) -> Path:
        on_path = [shutil.which(name) or "" for name in ("python3", "python")]
        candidates = ins.python_candidates(sys.platform, sys.executable, sys.prefix, sys.base_prefix,
                                           getattr(sys, "_base_executable", ""), on_path)
        try:
            python = ins.find_python(candidates, eng.engine_environment())
        except ins.InstallError as e:
            raise QgsProcessingException(f"AerialSeg engine installation: {e}") from None
        feedback.pushInfo(f"Python for the environment: {python}")
        return python

    def _run_step(self, command: list, feedback, start: float, end: float) -> None:
        feedback.pushCommandInfo(subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command))
        feedback.setProgress(start)
        counted = [0]

        def on_line(line: str) -> None:
            feedback.pushConsoleInfo(line)
            if line.lstrip().startswith(_COUNTED):  # each package pip reports moves the bar a little
                counted[0] += 1
                feedback.setProgress(start + (end - start) * (1 - 0.93 ** counted[0]))

        ins.run_command(command, on_line, feedback.isCanceled, {**eng.engine_environment(), **qgis_proxy()})

    def _verify(self, target: Path) -> str:
        """Run the engine's own check; a failure forgets the install, so the next run installs again."""
        program = ins.env_program(target)
        try:
            proc = subprocess.run([str(program), "check", "--json"], capture_output=True, text=True, timeout=300,
                                  env=eng.engine_environment(), encoding="utf-8", errors="replace")
        except (OSError, subprocess.SubprocessError) as e:
            ins.clear_marker(target)
            raise QgsProcessingException(f"AerialSeg engine installed in {target} but it does not start: {e}. Run "
                                         "this algorithm again.") from None
        ok, message = ins.parse_check(proc.stdout, proc.stderr, proc.returncode)
        if not ok:
            ins.clear_marker(target)
            raise QgsProcessingException(f"AerialSeg engine installed in {target} but its check fails: {message}")
        return message
