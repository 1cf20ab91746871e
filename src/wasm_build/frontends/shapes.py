"""Static input shapes: the model's own dims merged with the user's pins, and the error that
names an open dimension and how to pin it."""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax

from ..config.settings import InputSpec
from ..config.suggest import did_you_mean
from ..errors import ConfigError, WasmBuildError
from .loaded import LoadedModel


_PIN_HINT = 'pin it on the command line with --input {name}={example} or in pyproject with inputs = {{ {name} = {{ shape = [{example_list}] }} }}'


def pin_hint(name: str, dims: list[Any]) -> str:
    example = [d if isinstance(d, int) and d > 0 else 1 for d in dims]
    return _PIN_HINT.format(name=name, example="x".join(map(str, example)), example_list=", ".join(map(str, example)))


def check_unknown_inputs(known: list[str], pinned: dict[str, InputSpec]) -> None:
    for name in pinned:
        if name not in known:
            hint = did_you_mean(name, known, listing="the model's inputs are")
            raise ConfigError(f"input '{name}' is not an input of the model", fix=hint)


def resolve_shape(name: str, dims: list[Any], spec: InputSpec | None) -> list[int]:
    """Merge the model's dims (ints; strings or None when open) with a user pin."""
    if spec is not None and spec.shape is not None:
        if len(spec.shape) != len(dims):
            raise ConfigError(
                f"input '{name}' has {len(dims)} dimensions {dims} but the pinned shape {list(spec.shape)} has {len(spec.shape)}",
                fix=pin_hint(name, dims),
            )
        for axis, (model_dim, pinned) in enumerate(zip(dims, spec.shape)):
            if isinstance(model_dim, int) and model_dim > 0 and model_dim != pinned:
                raise ConfigError(
                    f"input '{name}' dimension {axis} is {model_dim} in the model but pinned to {pinned}",
                    fix=f"pin only open dimensions; use {model_dim} for dimension {axis}",
                )
        return list(spec.shape)
    for axis, dim in enumerate(dims):
        if isinstance(dim, int) and dim == 0:
            raise ConfigError(
                f"input '{name}' dimension {axis} is 0: an empty tensor, which wasm-build does not compile",
                fix="export the model with a non-zero size for that dimension, or pin it: " + pin_hint(name, dims),
            )
        if not (isinstance(dim, int) and dim > 0):
            raise ConfigError(
                f"input '{name}' dimension {axis} is dynamic ({dim!r}); wasm-build compiles static shapes only",
                fix=pin_hint(name, dims),
            )
    return [int(d) for d in dims]


def pin_relax_inputs(kind: str, module: Any, pinned: dict[str, InputSpec], digest: str) -> LoadedModel:
    """Pin symbolic dims of a Relax `main` and check that every input is static."""
    if "main" not in [gv.name_hint for gv in module.get_global_vars()]:
        raise WasmBuildError("the Relax module has no 'main' function", fix="name the entry function 'main'")
    main = module["main"]
    names = [p.name for p in main.params]
    check_unknown_inputs(names, pinned)
    bindings: dict[str, int] = {}
    for param in main.params:
        ty = param.ty
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            raise WasmBuildError(f"input '{param.name}' is not a tensor with a known rank ({ty})")
        dims = [int(v.value) if isinstance(v, tvm.tirx.IntImm) else str(v) for v in ty.shape.values]
        shape = resolve_shape(param.name, dims, pinned.get(param.name))
        for dim, value in zip(ty.shape.values, shape):
            if isinstance(dim, tvm.tirx.Var):
                if bindings.get(dim.name, value) != value:
                    raise ConfigError(f"symbolic dimension '{dim.name}' is pinned to both {bindings[dim.name]} and {value}")
                bindings[dim.name] = value
            elif not isinstance(dim, tvm.tirx.IntImm):
                raise ConfigError(f"input '{param.name}' has a computed dimension {dim}; only plain symbols can be pinned")
    if bindings:
        module = relax.transform.BindSymbolicVars(bindings, "main")(module)
    return LoadedModel(kind=kind, module=module, input_names=names, output_names=None, digest=digest)
