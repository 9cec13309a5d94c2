"""Hostile and unusual inputs against the real command line (issue 16's battery).

Each case runs ``python -m aerialseg.cli`` as a subprocess on generated files and checks the promise
of the README: exit status 1 (2 for usage), one ``aerialseg: error:`` line on stderr, no traceback,
nothing written, the input unchanged.
"""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainkit import make_folder

pytestmark = pytest.mark.slow


class _Payload:
    """Unpickling this calls ``exec`` on code that writes a marker file: what a hostile ``.pt`` would do."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('code ran')"

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped ``.pt`` whose pickle runs code when loaded without ``weights_only``."""
    torch.save({"arch": {"name": "unet"}, "card": {}, "state_dict": {}, "hook": _Payload(marker)}, path)
    return path


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=dict(os.environ))


def assert_one_error_line(r: subprocess.CompletedProcess, *words: str, status: int = 1) -> None:
    assert r.returncode == status, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_the_payload_is_real(tmp_path):
    """Control: an unrestricted unpickler does run the payload (so the tests below test something)."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("entry", ["classify", "export", "init-weights", "resume"])
def test_a_hostile_checkpoint_never_runs_code(tmp_path, entry):
    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    before = evil.read_bytes()
    data = make_folder(tmp_path / "data")
    train = ["train", "--dataset", "folder", "--images", data / "images", "--masks", data / "masks",
             "--class-names", "a,b,c", "--epochs", "1", "--chips-per-epoch", "4", "--batch-size", "2",
             "--chip", "32", "--no-progress"]
    if entry == "classify":
        r = cli("classify", data / "images" / "a.tif", tmp_path / "out.tif", "--model", evil)
        assert not (tmp_path / "out.tif").exists()
    elif entry == "export":
        r = cli("export", evil, tmp_path / "out.onnx")
        assert not (tmp_path / "out.onnx").exists()
    elif entry == "init-weights":
        r = cli(*train, "--out", tmp_path / "run", "--init-weights", evil)
    else:  # a run folder someone shared, with a hostile last.pt: re-running "resumes" from it
        (tmp_path / "run").mkdir()
        evil.rename(tmp_path / "run" / "last.pt")
        evil = tmp_path / "run" / "last.pt"
        r = cli(*train, "--out", tmp_path / "run")
    assert not marker.exists(), "a model file ran code"
    assert_one_error_line(r, "refused")
    assert evil.read_bytes() == before
