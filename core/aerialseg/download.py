"""Models by URL: download once into the user's cache, verify, then use like a bundled model.

``https://host/path/model.onnx#sha256=HEX`` downloads ``model.onnx`` into the cache folder (per platform,
or ``$AERIALSEG_CACHE``), checking the sha256 when the URL gives one. The file is written under a temporary
name and renamed only once complete and verified, so an interrupted download or a wrong checksum never
leaves a file that a later run would use. Only ONNX files are accepted (never pickles).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aerialseg.errors import ModelError

log = logging.getLogger("aerialseg")
_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def is_url(spec: object) -> bool:
    """True for an http(s) URL."""
    return isinstance(spec, str) and spec.lower().startswith(("http://", "https://"))


def cache_dir() -> Path:
    """Where downloaded models live: ``$AERIALSEG_CACHE``, else the platform's user cache folder."""
    if os.environ.get("AERIALSEG_CACHE"):
        return Path(os.environ["AERIALSEG_CACHE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aerialseg" / "models"


def parse_model_url(url: str) -> tuple[str, str, str | None]:
    """(URL without fragment, file name, expected sha256 or None) of a model URL."""
    parts = urllib.parse.urlsplit(url)
    name = Path(urllib.parse.unquote(parts.path)).name
    if not name.lower().endswith(".onnx"):
        raise ModelError(f"a model URL must name an .onnx file, got {url}")
    frag = urllib.parse.parse_qs(parts.fragment)
    sha = frag.get("sha256", [None])[0]
    if sha is not None and not _SHA256.match(sha):
        raise ModelError(f"#sha256= in {url} must be 64 hexadecimal digits")
    return urllib.parse.urlunsplit(parts._replace(fragment="")), name, sha.lower() if sha else None


def fetch_model(url: str, on_progress: Callable[[int, int], None] | None = None) -> Path:
    """The cached file of a model URL, downloading (and verifying) it first if needed."""
    plain, name, sha = parse_model_url(url)
    folder = cache_dir() / (sha[:16] if sha else hashlib.sha256(plain.encode()).hexdigest()[:16])
    target = folder / name
    if target.is_file() and (sha is None or _sha256(target) == sha):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}.partial"
    try:
        got = _download(plain, partial, on_progress)
        if sha is not None and got != sha:
            raise ModelError(f"{url}: checksum mismatch (got sha256 {got}); the download was discarded")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("downloaded %s into %s", plain, target)
    return target


def _download(url: str, dest: Path, on_progress: Callable[[int, int], None] | None) -> str:
    """Stream ``url`` into ``dest``; returns the sha256; ModelError on any network error or short read."""
    digest, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            log.info("downloading %s (%s)", url, f"{total / 1e6:.1f} MB" if total else "size unknown")
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, total)
    except urllib.error.HTTPError as e:
        raise ModelError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise ModelError(f"cannot download {url}: {reason}") from None
    if total and done != total:
        raise ModelError(f"download of {url} was cut off ({done} of {total} bytes); nothing was kept")
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_models() -> list[Path]:
    """Every downloaded model in the cache."""
    root = cache_dir()
    return sorted(root.glob("*/*.onnx")) if root.is_dir() else []
