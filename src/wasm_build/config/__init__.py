"""Settings: what a project declares in `[tool.wasm-build]`, on the command line, in
config-settings and in the environment, merged and checked before any work is done."""

from __future__ import annotations

from .settings import DimSpec, InputSpec, ModelSettings, ProjectSettings, TuningSettings, from_dict, to_dict

__all__ = ["DimSpec", "InputSpec", "ModelSettings", "ProjectSettings", "TuningSettings", "from_dict", "to_dict"]
