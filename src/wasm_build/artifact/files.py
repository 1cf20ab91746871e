"""Files and directories that appear whole or not at all: a build killed at any point leaves
the previous artifacts, never a half-written one."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def replace_directory(source: Path, destination: Path) -> None:
    """Swap `source` in for `destination` with two renames; the old tree is removed afterwards.
    Builds that may swap the same destination hold `output_lock` around this."""
    retired = make_temp_dir(destination.parent, f".{destination.name}.retired-")
    try:
        if destination.exists():
            os.replace(destination, retired / destination.name)
        os.replace(source, destination)
    finally:
        shutil.rmtree(retired, ignore_errors=True)


@contextmanager
def staged_directory(destination: Path) -> Iterator[Path]:
    """Yield a fresh staging directory; on success it replaces `destination` whole."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(destination.parent, f".{destination.name}.staging-")
    try:
        yield staging
        with output_lock(destination.parent):
            replace_directory(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new directory in `parent` named `{prefix}{pid}-{random}`: the process id lets
    `sweep_stale` remove what a killed build left. `mkdtemp` makes it private (0700), but what
    it turns into must have an ordinary directory's permissions."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    os.chmod(path, 0o777 & ~_umask())
    return path


@contextmanager
def work_dir(what: str) -> Iterator[Path]:
    """A scratch directory in the system's temporary directory, removed afterwards; named so
    that `sweep_stale` finds it if the process is killed first."""
    path = make_temp_dir(Path(tempfile.gettempdir()), f"{WORK_PREFIX}{what}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


WORK_PREFIX = "wasm-build-"


def sweep_stale(parent: Path, prefix: str) -> None:
    """Remove `parent/{prefix}{kind}-{pid}-*` entries whose process is gone (a build killed
    with SIGKILL runs no clean-up)."""
    pattern = re.compile(rf"^{re.escape(prefix)}[A-Za-z]*-?(\d+)-")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (an output or cache folder) for a swap of one of
    its entries: builds in other processes or threads wait instead of racing between the
    two renames of `replace_directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` whole (readers see the old file or the new one, never a part), with the
    permissions of a normally created file: mkstemp makes files private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """`write_bytes_atomic` of UTF-8 text with LF line ends."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
