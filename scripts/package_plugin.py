#!/usr/bin/env python3
"""Build aerialseg_qgis.zip, the QGIS plugin as "Install from ZIP" and plugins.qgis.org take it.

    python3 scripts/package_plugin.py [--output aerialseg_qgis.zip]

The zip holds one top folder ``aerialseg_qgis/`` with the package's source files, ``metadata.txt``
copied from the repository root (the single source of the plugin's metadata), ``LICENSE`` and the
engine's pure-Python wheel in ``engine_wheel/`` (built with ``pip wheel --no-deps``, or given with
``--wheel``), which the algorithm aerialseg:installengine installs into a private environment. It is
checked against the plugin repository's rules before it is written: required metadata fields, an
``__init__.py`` with ``classFactory``, no compiled or hidden files, under 25 MB. Standard library + pip.
"""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "aerialseg_qgis"
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
            "tracker", "homepage")
WHEEL_DIR = "engine_wheel"
MAX_BYTES = 25 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_FORBIDDEN_SUFFIXES = {".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".exe", ".o", ".a"}


def read_metadata(path: Path = ROOT / "metadata.txt") -> dict[str, str]:
    """The [general] section of metadata.txt, checked for the fields the plugin repository requires."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(path, encoding="utf-8")
    if not parser.has_section("general"):
        raise SystemExit(f"{path}: no [general] section")
    meta = dict(parser["general"])
    missing = [k for k in REQUIRED if not meta.get(k, "").strip()]
    if missing:
        raise SystemExit(f"{path}: missing required field(s): {', '.join(missing)}")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", meta["version"].strip()):
        raise SystemExit(f"{path}: version must look like 1.2 or 1.2.3, got {meta['version']!r}")
    for key in ("repository", "tracker", "homepage"):
        if not re.match(r"https?://", meta[key].strip()):
            raise SystemExit(f"{path}: {key} must be an http(s) URL")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", meta["email"].strip()):
        raise SystemExit(f"{path}: email must be an e-mail address")
    if meta.get("hasProcessingProvider", "").strip().lower() not in ("yes", "true"):
        raise SystemExit(f"{path}: hasProcessingProvider=yes is needed for qgis_process")
    return meta


def plugin_files(package: Path = ROOT / PACKAGE) -> list[Path]:
    """The package's files to ship (sources, icons); no caches, compiled or hidden files."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if path.is_dir() or any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in _FORBIDDEN_SUFFIXES:
            continue
        if rel.as_posix() in ("metadata.txt", "LICENSE") or rel.parts[0] == WHEEL_DIR:  # added by build()
            continue
        files.append(path)
    return files


def engine_wheel(folder: Path) -> Path:
    """Build the engine's wheel (``pip wheel --no-deps``) into ``folder``; return it.

    It is built from a clean copy of the repository's top-level files and core/, so a stale build/ folder
    (setuptools reuses build/lib) can never put deleted modules into the wheel.
    """
    source = folder / "source"
    shutil.copytree(ROOT / "core", source / "core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc", "build"))
    for path in ROOT.iterdir():
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".zip":
            shutil.copy2(path, source / path.name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(folder),
                           str(source)], capture_output=True, text=True)
    wheels = sorted(folder.glob("aerialseg-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise SystemExit(f"building the engine wheel failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return check_wheel(wheels[0])


def check_wheel(wheel: Path) -> Path:
    """A wheel may ship in the plugin only if it is pure Python (``py3-none-any``, no compiled files inside)."""
    if not wheel.name.startswith("aerialseg-") or not wheel.name.endswith("-py3-none-any.whl"):
        raise SystemExit(f"{wheel.name}: the plugin ships only a pure-Python aerialseg wheel (…-py3-none-any.whl)")
    with zipfile.ZipFile(wheel) as zf:
        compiled = [n for n in zf.namelist() if Path(n).suffix.lower() in _FORBIDDEN_SUFFIXES]
    if compiled:
        raise SystemExit(f"{wheel.name} holds compiled files: {', '.join(compiled[:5])}")
    return wheel


def build(output: Path, wheel: Path | None = None) -> Path:
    """Write the zip (with ``wheel``, or an engine wheel built now); return its path."""
    meta = read_metadata()
    package = ROOT / PACKAGE
    if not (package / "__init__.py").is_file() or "def classFactory" not in (package / "__init__.py").read_text():
        raise SystemExit(f"{package}/__init__.py with classFactory() is missing")
    icon = meta.get("icon", "").strip()
    if icon and not (package / icon).is_file():
        raise SystemExit(f"metadata.txt names icon={icon}, which is not in {package}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = check_wheel(wheel) if wheel else engine_wheel(Path(scratch))
        return _write_zip(output, package, wheel)


def _write_zip(output: Path, package: Path, wheel: Path) -> Path:
    tmp = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files(package):
            zf.write(path, f"{PACKAGE}/{path.relative_to(package).as_posix()}")
        zf.write(ROOT / "metadata.txt", f"{PACKAGE}/metadata.txt")
        zf.write(ROOT / "LICENSE", f"{PACKAGE}/LICENSE")
        zf.write(wheel, f"{PACKAGE}/{WHEEL_DIR}/{wheel.name}", zipfile.ZIP_STORED)  # a wheel is compressed already
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"the plugin zip is {size / 1e6:.1f} MB; the plugin repository takes at most 25 MB")
    tmp.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=ROOT / f"{PACKAGE}.zip", help="zip to write")
    parser.add_argument("--wheel", type=Path, help="engine wheel to ship (default: build one with pip wheel)")
    args = parser.parse_args(argv)
    out = build(args.output, args.wheel)
    meta = read_metadata()
    placeholders = [k for k in ("email", "homepage", "tracker", "repository") if "FILL-IN" in meta[k]]
    if placeholders:
        print(f"warning: metadata.txt: {', '.join(placeholders)} still hold FILL-IN placeholders; the maintainers "
              "must set the real ones before uploading to plugins.qgis.org", file=sys.stderr)
    with zipfile.ZipFile(out) as zf:
        n = len(zf.namelist())
    print(f"{out}: {meta['name']} {meta['version']}, {n} files, {out.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
