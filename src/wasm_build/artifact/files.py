"""Files and directories that appear whole or not at all: a build killed at any point leaves
the previous artifacts, never a half-written one."""

from __future__ import annotations

import hashlib
import os
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
    """Swap `source` in for `destination` with two renames; the old tree is removed afterwards."""
    retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.retired-", dir=destination.parent))
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
        replace_directory(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new directory in `parent` that becomes an artifact: `mkdtemp` makes it private (0700),
    but what it turns into must have an ordinary directory's permissions."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, 0o777 & ~_umask())
    return path


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
