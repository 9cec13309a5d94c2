#!/usr/bin/env python3
"""Build aerialseg_qgis.zip, the QGIS plugin as "Install from ZIP" and plugins.qgis.org take it.

    python3 scripts/package_plugin.py [--output aerialseg_qgis.zip]

The zip holds one top folder ``aerialseg_qgis/`` with the package's source files, ``metadata.txt``
copied from the repository root (the single source of the plugin's metadata) and ``LICENSE``. It is
checked against the plugin repository's rules before it is written: required metadata fields, an
``__init__.py`` with ``classFactory``, no compiled or hidden files, under 25 MB. Standard library only.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "aerialseg_qgis"
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository")
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
    if not re.match(r"https?://", meta["repository"].strip()):
        raise SystemExit(f"{path}: repository must be an http(s) URL")
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
        if rel.as_posix() in ("metadata.txt", "LICENSE"):  # generated copies of a linked install
            continue
        files.append(path)
    return files


def build(output: Path) -> Path:
    """Write the zip; return its path."""
    meta = read_metadata()
    package = ROOT / PACKAGE
    if not (package / "__init__.py").is_file() or "def classFactory" not in (package / "__init__.py").read_text():
        raise SystemExit(f"{package}/__init__.py with classFactory() is missing")
    icon = meta.get("icon", "").strip()
    if icon and not (package / icon).is_file():
        raise SystemExit(f"metadata.txt names icon={icon}, which is not in {package}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files(package):
            zf.write(path, f"{PACKAGE}/{path.relative_to(package).as_posix()}")
        zf.write(ROOT / "metadata.txt", f"{PACKAGE}/metadata.txt")
        zf.write(ROOT / "LICENSE", f"{PACKAGE}/LICENSE")
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"the plugin zip is {size / 1e6:.1f} MB; the plugin repository takes at most 25 MB")
    tmp.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=ROOT / f"{PACKAGE}.zip", help="zip to write")
    args = parser.parse_args(argv)
    out = build(args.output)
    meta = read_metadata()
    with zipfile.ZipFile(out) as zf:
        n = len(zf.namelist())
    print(f"{out}: {meta['name']} {meta['version']}, {n} files, {out.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
