"""Python callables returning a Relax `IRModule` ("package.module:function")."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Mapping

import tvm

from ..config.settings import DimSpec, InputSpec
from ..errors import WasmBuildError
from .loaded import LoadedModel
from .shapes import pin_relax_inputs


def load_callable(
    reference: str, pinned: dict[str, InputSpec], project_dir: Path, dims: Mapping[str, DimSpec] | None = None
) -> LoadedModel:
    module_name, _, attr = reference.partition(":")
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise WasmBuildError(
            f"cannot import '{reference}' ({type(exc).__name__}: {exc})",
            fix="use 'package.module:function' importable from the project directory",
        ) from None
    module = target() if callable(target) and not isinstance(target, tvm.IRModule) else target
    if not isinstance(module, tvm.IRModule):
        raise WasmBuildError(f"'{reference}' returned {type(module).__name__}, not a tvm.IRModule with a Relax 'main'")
    digest = hashlib.sha256(module.script(show_meta=True).encode()).hexdigest()
    return pin_relax_inputs("relax", module, pinned, digest, dims)
