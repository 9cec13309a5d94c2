"""Models by URL, against a real HTTP server on loopback: download once, verify, never use a partial file."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aerialseg.download import cached_models, fetch_model, parse_model_url
from aerialseg.errors import ModelError
from rasters import read_band, scene, write_raster


class _Server:
    """Serves ``files`` (name -> bytes); ``/cut/NAME`` promises the full length but sends half, then hangs up."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                cut = self.path.startswith("/cut/")
                data = outer.files.get(self.path.removeprefix("/cut/").lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(colour_model):
    s = _Server({"colour.onnx": colour_model.read_bytes()})
    yield s
    s.httpd.shutdown()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AERIALSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_download_once_with_checksum(server, colour_model):
    sha = hashlib.sha256(colour_model.read_bytes()).hexdigest()
    url = f"{server.url}/colour.onnx#sha256={sha}"
    first = fetch_model(url)
    assert first.read_bytes() == colour_model.read_bytes()
    assert fetch_model(url) == first and server.requests == ["/colour.onnx"]  # cached: no second request
    assert cached_models() == [first]


def test_wrong_checksum_keeps_nothing(server, cache):
    with pytest.raises(ModelError, match="checksum mismatch"):
        fetch_model(f"{server.url}/colour.onnx#sha256={'0' * 64}")
    assert _leftovers(cache) == []


def test_interrupted_download_keeps_nothing_and_a_retry_works(server, cache, colour_model):
    with pytest.raises(ModelError, match="cut off|cannot download"):
        fetch_model(f"{server.url}/cut/colour.onnx")
    assert _leftovers(cache) == []
    assert fetch_model(f"{server.url}/colour.onnx").read_bytes() == colour_model.read_bytes()


def test_bad_urls(server):
    with pytest.raises(ModelError, match="HTTP 404"):
        fetch_model(f"{server.url}/missing.onnx")
    with pytest.raises(ModelError, match=r"\.onnx"):
        parse_model_url(f"{server.url}/model.pt")
    with pytest.raises(ModelError, match="64 hexadecimal"):
        parse_model_url(f"{server.url}/colour.onnx#sha256=abc")


@pytest.mark.slow
def test_classify_and_list_a_model_by_url(server, tmp_path, cache):
    photo = write_raster(tmp_path / "photo.tif", scene(96, 128))
    url = f"{server.url}/colour.onnx"
    env = {**os.environ, "AERIALSEG_CACHE": str(cache)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, a)], capture_output=True,
                                    text=True, env=env, timeout=300)
    r = run("classify", photo, tmp_path / "lc.tif", "--model", url)
    assert r.returncode == 0, r.stderr
    assert set(read_band(tmp_path / "lc.tif").ravel()) <= {0, 1, 2}
    listed = run("models")
    assert listed.returncode == 0 and "colour" in listed.stdout
    bad = run("classify", photo, tmp_path / "lc2.tif", "--model", f"{server.url}/colour.onnx#sha256={'1' * 64}")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "checksum" in bad.stderr
    assert not (tmp_path / "lc2.tif").exists()
