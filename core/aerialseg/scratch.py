"""Scratch files of a run: output locks, temporary folders that name their owner, and their clean-up.

A run takes each output's name with a create-exclusive lock file (``.<name>.aerialseg-lock``) before it
checks whether the output exists, so two runs cannot both write the same output. Temporary folders
carry this machine's id and the process id (``.<name>.aerialseg-<host>-<pid>-<random>``,
``aerialseg-margins-<host>-<pid>-<random>``): a run killed with SIGKILL leaves them behind, and the next
run deletes those whose process is gone. Only names of exactly this form, made on this machine, are
ever deleted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from aerialseg.errors import OutputError, first_line

HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # PIDs mean something on one machine only
_SCRATCH = re.compile(r"^(?:\..+\.aerialseg|aerialseg-margins)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]+$")
LOW_SPACE = 1 << 20  # bytes: a write that fails with less than this free failed because the disk is full
UNOWNED_LOCK_S = 60  # a lock file without an owner (killed while writing it) is stale after this long


def scratch_prefix(name: str, hidden: bool = True) -> str:
    """Prefix for ``tempfile.mkdtemp`` naming this process: ``.<name>.aerialseg-<host>-<pid>-``."""
    return f".{name}.aerialseg-{HOST}-{os.getpid()}-" if hidden else f"{name}-{HOST}-{os.getpid()}-"


def remove_stale(folder: Path) -> None:
    """Delete the scratch files and folders in ``folder`` left by dead AerialSeg processes of this machine."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for path in entries:
        owner = _SCRATCH.match(path.name)
        if owner is None or owner["host"] != HOST or _alive(int(owner["pid"])):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when that cannot be told)."""
    if pid == os.getpid():
        return True
    try:
        import psutil
    except ImportError:
        if os.name == "nt":  # os.kill would terminate it there
            return True
    else:
        return bool(psutil.pid_exists(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def lock_path(output: Path) -> Path:
    return output.parent / f".{output.name}.aerialseg-lock"


@contextlib.contextmanager
def claim_outputs(outputs: Sequence[Path], overwrite: bool) -> Iterator[None]:
    """Hold the names of ``outputs`` for this run; refuse if another run holds one or, without
    ``overwrite``, if one exists. The locks are removed however the block is left."""
    taken: list[Path] = []
    try:
        for output in outputs:
            _take(output)
            taken.append(output)
            if output.exists() and not overwrite:
                raise OutputError(f"output {output} already exists; pass --overwrite (overwrite=True) to replace it")
        yield
    finally:
        for output in taken:
            lock_path(output).unlink(missing_ok=True)


def _take(output: Path) -> None:
    lock = lock_path(output)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _stale(lock):
                lock.unlink(missing_ok=True)
                continue
            break
        except OSError as e:
            raise write_error(e, output.parent) from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{HOST} {os.getpid()}\n")
        return
    raise OutputError(f"another aerialseg run is writing {output}; wait for it to finish "
                      f"(if no run is active, delete the lock file {lock})")


def _stale(lock: Path) -> bool:
    """Whether ``lock`` was left by a dead process of this machine (or by one killed while writing it)."""
    try:
        text = lock.read_text().split()
        age = time.time() - lock.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return False
    if len(text) != 2 or not text[1].isdigit():
        return age > UNOWNED_LOCK_S
    return text[0] == HOST and not _alive(int(text[1]))


def write_error(e: BaseException, folder: Path) -> OutputError:
    """A one-line OutputError for a write that failed in ``folder``; it says so when the disk is full."""
    if disk_full(e, folder):
        return OutputError(f"the disk is full: no space left in {folder}; free some space or choose "
                           "another output folder")
    reason = getattr(e, "strerror", None) or first_line(e)
    return OutputError(f"cannot write in {folder}: {reason}")


def disk_full(e: BaseException, folder: Path) -> bool:
    """Whether a failed write in ``folder`` failed for want of space."""
    if getattr(e, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    if any(s in str(e).lower() for s in ("no space left", "disk is full", "disk full")):
        return True
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        return False
