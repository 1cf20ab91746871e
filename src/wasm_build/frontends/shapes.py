"""Input shapes: the model's own dims merged with the user's, every dimension either static
or a bounded symbolic dimension, and the errors that name an open dimension and how to pin
or bound it.

A dimension of an input is, in the model, a size, a name (an ONNX `dim_param`, a
torch.export symbol, a Relax `tirx.Var`) or nothing (an unnamed ONNX dimension). The user's
`inputs` may pin it to a size or (re)name it, and `dims` bounds names. What reaches the
compiler is a Relax `main` whose input shapes hold sizes and plain symbolic variables, with
the bounds in the attributes TVM's memory planner reads: `tir_var_lower_bound` and
`tir_var_upper_bound`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import tvm
from tvm import relax

from ..config.settings import DimSpec, InputSpec
from ..config.suggest import did_you_mean
from ..errors import ConfigError, WasmBuildError
from .loaded import BoundDim, LoadedModel

LOWER_BOUND_ATTR = "tir_var_lower_bound"
UPPER_BOUND_ATTR = "tir_var_upper_bound"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_PIN_HINT = 'pin it on the command line with --input {name}={example} or in pyproject with inputs = {{ {name} = {{ shape = [{example_list}] }} }}'


def pin_hint(name: str, dims: list[Any]) -> str:
    example = [d if isinstance(d, int) and d > 0 else 1 for d in dims]
    return _PIN_HINT.format(name=name, example="x".join(map(str, example)), example_list=", ".join(map(str, example)))


def bound_hint(dim: str, input_name: str, dims: list[Any]) -> str:
    """How to bound symbolic dimension `dim` (or pin it instead)."""
    return (
        f"bound it: --dim {dim}=1..N on the command line, dims = {{ {dim} = {{ min = 1, max = N }} }} in pyproject "
        f"(one artifact then runs every size up to N); or {pin_hint(input_name, dims)}"
    )


def check_unknown_inputs(known: list[str], pinned: dict[str, InputSpec]) -> None:
    for name in pinned:
        if name not in known:
            hint = did_you_mean(name, known, listing="the model's inputs are")
            raise ConfigError(f"input '{name}' is not an input of the model", fix=hint)


def resolve_shape(name: str, dims: list[Any], spec: InputSpec | None) -> list[int | str]:
    """Merge the model's dims (ints; strings when named, None when open) with a user spec.

    Returns sizes and names of symbolic dimensions; an open dimension the user does not pin
    or name is an error that says how to."""
    if spec is not None and spec.shape is not None:
        if len(spec.shape) != len(dims):
            raise ConfigError(
                f"input '{name}' has {len(dims)} dimensions {dims} but the pinned shape {list(spec.shape)} has {len(spec.shape)}",
                fix=pin_hint(name, dims),
            )
        for axis, (model_dim, pinned) in enumerate(zip(dims, spec.shape)):
            if isinstance(model_dim, int) and model_dim > 0 and model_dim != pinned:
                what = "named" if isinstance(pinned, str) else "pinned to"
                raise ConfigError(
                    f"input '{name}' dimension {axis} is {model_dim} in the model but {what} {pinned!r}",
                    fix=f"pin or name only open dimensions; use {model_dim} for dimension {axis}",
                )
        return list(spec.shape)
    for axis, dim in enumerate(dims):
        if isinstance(dim, int) and dim == 0:
            raise ConfigError(
                f"input '{name}' dimension {axis} is 0: an empty tensor, which wasm-build does not compile",
                fix="export the model with a non-zero size for that dimension, or pin it: " + pin_hint(name, dims),
            )
        if dim is None or (isinstance(dim, int) and dim < 0):
            named = ["seq" if d is dim else (d if d is not None else 1) for d in dims]
            raise ConfigError(
                f"input '{name}' dimension {axis} is dynamic and unnamed; wasm-build needs every dimension "
                "pinned to a size or named and bounded",
                fix=f"name and bound it: --input {name}={'x'.join(map(str, named))} --dim seq=1..N; "
                f"or {pin_hint(name, dims)}",
            )
    return [d if isinstance(d, str) else int(d) for d in dims]


def _shape_dims(param: Any) -> list[Any]:
    """A Relax parameter's dims: ints, `tirx.Var`s; a computed dimension is refused."""
    ty = param.ty
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        raise WasmBuildError(f"input '{param.name}' is not a tensor with a known rank ({ty})")
    dims = []
    for axis, value in enumerate(ty.shape.values):
        if isinstance(value, tvm.tirx.IntImm):
            dims.append(int(value.value))
        elif isinstance(value, tvm.tirx.Var):
            dims.append(value)
        else:
            raise ConfigError(
                f"input '{param.name}' dimension {axis} is computed ({value}); only sizes and plain symbols can be "
                "pinned or bounded",
                fix=pin_hint(param.name, []),
            )
    return dims


def pin_relax_inputs(
    kind: str, module: Any, pinned: dict[str, InputSpec], digest: str, dims: Mapping[str, DimSpec] | None = None
) -> LoadedModel:
    """Pin, name and bound the symbolic dims of a Relax `main`; every input dimension ends up
    a size or a bounded symbol."""
    if "main" not in [gv.name_hint for gv in module.get_global_vars()]:
        raise WasmBuildError("the Relax module has no 'main' function", fix="name the entry function 'main'")
    main = module["main"]
    names = [p.name for p in main.params]
    check_unknown_inputs(names, pinned)
    model_bounds = _bounds_of(main)
    replace: dict[str, tuple[Any, Any]] = {}  # model symbol -> (its variable, a size or a renamed variable)
    renamed: dict[str, tvm.tirx.Var] = {}
    for param in main.params:
        model_dims = _shape_dims(param)
        shown = [d if isinstance(d, int) else d.name for d in model_dims]
        spec = pinned.get(param.name)
        shape = resolve_shape(param.name, shown, spec)
        for dim, value in zip(model_dims, shape):
            # An input the user says nothing about follows what other inputs say of its symbols.
            if not isinstance(dim, tvm.tirx.Var) or spec is None or spec.shape is None:
                continue
            if isinstance(value, str):
                value = renamed.setdefault(value, dim if dim.name == value else tvm.tirx.Var(value, "int64"))
                bounds = model_bounds.get(dim.name)
                if bounds is not None and value.name != dim.name:
                    model_bounds.setdefault(value.name, bounds)
            _, previous = replace.get(dim.name, (dim, None))
            if previous is not None and not _same(previous, value):
                raise ConfigError(
                    f"symbolic dimension '{dim.name}' is given both {_show(previous)} and {_show(value)}",
                    fix="give one dimension one size or name in every input",
                )
            replace[dim.name] = (dim, value)
    changes = {
        var.name: tvm.tirx.IntImm("int64", value) if isinstance(value, int) else value
        for var, value in replace.values()
        if not (isinstance(value, tvm.tirx.Var) and value.same_as(var))
    }
    if changes:
        module = relax.transform.BindSymbolicVars(changes, "main")(module)
    symbols = {
        v.name: (param.name, [d if isinstance(d, int) else d.name for d in _shape_dims(param)])
        for param in module["main"].params
        for v in _shape_dims(param)
        if isinstance(v, tvm.tirx.Var)
    }
    bound = bound_dims(symbols, dict(dims or {}), model_bounds)
    module = with_bounds(module, bound)
    return LoadedModel(kind=kind, module=module, input_names=names, output_names=None, digest=digest, dims=bound)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    return a.same_as(b)


def _show(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"the name '{value.name}'"


def _bounds_of(main: Any) -> dict[str, tuple[int, int | None]]:
    """Bounds the model carries (torch.export's `Dim(min, max)`): name -> (min, max or None)."""
    attrs = main.attrs or {}
    lower = {str(k): int(v) for k, v in (attrs.get(LOWER_BOUND_ATTR) or {}).items()}
    upper = {str(k): int(v) for k, v in (attrs.get(UPPER_BOUND_ATTR) or {}).items()}
    return {name: (lower.get(name, 1), upper.get(name)) for name in {*lower, *upper}}


def bound_dims(
    symbols: dict[str, tuple[str, list[Any]]],
    dims: dict[str, DimSpec],
    model_bounds: dict[str, tuple[int, int | None]] | None = None,
) -> list[BoundDim]:
    """Bounds for every symbolic dimension of the inputs: the user's `dims`, else the model's own.

    `symbols`: name -> (an input that has it, that input's dims) for messages."""
    model_bounds = model_bounds or {}
    for name in dims:
        if name not in symbols:
            known = sorted(symbols)
            hint = did_you_mean(name, known, listing="the model's symbolic dimensions are") if known else (
                "the model's inputs have no symbolic dimension: name one with --input NAME=1xseq"
            )
            raise ConfigError(f"dims.{name}: '{name}' is not a symbolic dimension of the model's inputs", fix=hint)
    bound = []
    for name, (input_name, input_dims) in symbols.items():
        if not _IDENTIFIER.match(name):
            raise ConfigError(
                f"input '{input_name}' has a symbolic dimension named {name!r}, which is not an identifier "
                "(dimension names become C and Rust constants)",
                fix=f"rename it with --input {input_name}="
                + "x".join("seq" if d == name else str(d) for d in input_dims)
                + " --dim seq=1..N",
            )
        model_min, model_max = model_bounds.get(name, (1, None))
        model_min = max(model_min, 1)  # torch.export's default minimum is 0; empty tensors are not compiled
        if name in dims:
            spec = dims[name]
            if spec.min < model_min or (model_max is not None and spec.max > model_max):
                raise ConfigError(
                    f"dims.{name} = {spec.min}..{spec.max} goes beyond the bounds the model was exported with "
                    f"({model_min}..{model_max if model_max is not None else 'unbounded'})",
                    fix=f"stay within them, or export the model with a wider Dim('{name}', min=..., max=...)",
                )
            bound.append(BoundDim(name, spec.min, spec.max))
        elif model_max is not None:
            bound.append(BoundDim(name, model_min, model_max))
        else:
            axis = input_dims.index(name)
            raise ConfigError(
                f"input '{input_name}' dimension {axis} is dynamic ('{name}') and unbounded; wasm-build plans memory "
                "ahead of time, so every dimension needs a size or an upper bound",
                fix=bound_hint(name, input_name, input_dims),
            )
    return sorted(bound, key=lambda d: list(symbols).index(d.name))


def with_bounds(module: Any, bound: list[BoundDim]) -> Any:
    """`module` with the bounds on `main`, where TVM's passes read them."""
    if not bound:
        return module
    main = module["main"]
    main = main.with_attr(LOWER_BOUND_ATTR, {d.name: d.min for d in bound})
    main = main.with_attr(UPPER_BOUND_ATTR, {d.name: d.max for d in bound})
    module = module.clone()
    module["main"] = main
    return module
