"""The content-addressed build cache: a finished model's artifacts, by a key over everything
that decides them.

The key covers the model's bytes (ONNX external data included), its options, the TVM and
wasm-build versions, wasm-build's own code and templates, the toolchain and the tuning
database. An entry is a directory of artifacts plus `ENTRY_FILE`, written last, which lists
every file with its sha256; an entry is used only when its directory holds exactly those
files with those hashes, and only the listed files are copied out. So a damaged, truncated
or tampered entry is rebuilt, never reused, and stray files never reach an output.

Entries appear by one rename and are never changed afterwards: concurrent builds of one model
race harmlessly (the first rename wins, the other's identical copy is dropped).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

from .. import __version__
from ..config.settings import ModelSettings
from .files import make_temp_dir, sha256_file, sweep_stale

ENTRY_FILE = "cache-entry.json"
_FORMAT = 1


def digest_path(path: Path) -> str:
    """sha256 of a file, or of every file below a directory (names included); "" if missing."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if file != path else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest() if files else ""


@functools.lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """wasm-build's code and templates: a changed generator never reuses old artifacts."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file() and file.suffix in {".py", ".j2", ".c", ".h", ".cmake", ".json", ".rs"} and "__pycache__" not in file.parts:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(
    model: ModelSettings, source_digest: str, toolchain_identity: str, tvm_version: str, database: Path | None
) -> str:
    payload = {
        "source": source_digest,
        "options": dataclasses.asdict(model),
        "tvm": tvm_version,
        "wasm-build": __version__,
        "wasm-build-files": package_fingerprint(),
        "toolchain": toolchain_identity,
        "tuning-database": digest_path(database) if database is not None else "",
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


class BuildCache:
    """Entries under `directory`, one per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def entry(self, key: str) -> Path:
        return self.directory / key

    def files(self, key: str) -> dict[str, str] | None:
        """The entry's files (relative path -> sha256) when it is intact, else None."""
        entry = self.entry(key)
        try:
            listing = json.loads((entry / ENTRY_FILE).read_text())
            if listing.get("format") != _FORMAT or listing.get("key") != key:
                return None
            files: dict[str, str] = listing["files"]
            present = {p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()} - {ENTRY_FILE}
            if present != set(files):
                return None
            if any(sha256_file(entry / relative) != digest for relative, digest in files.items()):
                return None
            return files
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def copy_out(self, key: str, destination: Path) -> bool:
        """Copy an intact entry's listed files into `destination` (a fresh directory); False
        when there is no intact entry. The copies are checked against the listing again, so
        an entry changed while it was copied is not used either."""
        files = self.files(key)
        if files is None:
            return False
        entry = self.entry(key)
        for relative in files:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            # No copy2: a file's time stamp must not depend on the cache.
            shutil.copyfile(entry / relative, target)
        return all(sha256_file(destination / relative) == digest for relative, digest in files.items())

    def publish(self, key: str, source: Path) -> None:
        """Add the artifacts in `source` as the entry `key`. An intact entry is never replaced
        (a concurrent reader never sees it change); a damaged one is moved aside first."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = self.entry(key)
        if entry.exists():
            if self.files(key) is not None:
                return
            self._discard(entry)
        sweep_stale(self.directory, f".{key}.")
        staging = make_temp_dir(self.directory, f".{key}.staging-")
        try:
            files = {}
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    relative = path.relative_to(source).as_posix()
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    files[relative] = sha256_file(target)
            # The listing comes last: an entry without it (a build killed while publishing) is not used.
            (staging / ENTRY_FILE).write_text(json.dumps({"format": _FORMAT, "key": key, "files": files}, indent=1))
            try:
                os.rename(staging, entry)  # fails if `entry` appeared meanwhile (a non-empty directory)
            except OSError:
                if not entry.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _discard(self, entry: Path) -> None:
        aside = make_temp_dir(self.directory, f".{entry.name}.damaged-")
        try:
            os.replace(entry, aside / entry.name)
        except OSError:
            pass  # another build moved it already
        shutil.rmtree(aside, ignore_errors=True)

