"""One model's settings as a JSON file: the hand-off from CMake's configure step to the build.

At configure time `integrations.cmake` writes, for every model, its whole validated table
(paths absolute), the directory the build resolves Python sources from and the build
cache to use; the build step runs `wasm-build compile --settings FILE --out DIR`, which
reads it back with `from_dict`. So no option is ever spelled as a CMake keyword *and* a
command-line flag: every key, present and future, goes through as data.

    {"format": "wasm-build-model-settings/1", "project-dir": "/abs/project",
     "cache": true, "cache-dir": "/abs/cache",            (left out: the default cache)
     "model": {"name": "kws", "source": "/abs/project/models/kws.onnx", "simd": true, ...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .settings import ModelSettings, from_dict, to_dict

FORMAT = "wasm-build-model-settings/1"


@dataclass(frozen=True)
class SettingsFile:
    """The contents of a settings file."""

    model: ModelSettings = field(metadata={"help": "The model's whole table, as in [[tool.wasm-build.models]]."})
    project_dir: str = field(
        metadata={"help": "Relative paths and 'module:function' sources resolve here (absolute)."}
    )
    cache: bool = field(default=True, metadata={"help": "Use the build cache."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "The build cache; default: $WASM_BUILD_CACHE_DIR or ~/.cache/wasm-build."}
    )
    format: str = field(default=FORMAT, metadata={"help": "The file's format and version."})


def dumps(settings: SettingsFile) -> str:
    """The file's text: stable (sorted keys), so an unchanged model writes the same bytes."""
    return json.dumps(to_dict(settings), indent=2, sort_keys=True, allow_nan=False) + "\n"


def read_settings_file(path: Path | str) -> SettingsFile:
    """Read and check a settings file: the same rules and messages as a pyproject table."""
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"the settings file {path} is not JSON ({exc})") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:
        raise ConfigError(
            f"the settings file {path} is in format {found!r}, this wasm-build reads {FORMAT!r}",
            fix="re-run CMake's configure step, which writes it (or write it with config.settings_file.dumps)",
        )
    return from_dict(SettingsFile, data, path=str(path))


__all__ = ["FORMAT", "SettingsFile", "dumps", "read_settings_file"]
