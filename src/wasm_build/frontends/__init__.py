"""Load a model into a Relax IRModule with static input shapes.

Sources:
- `*.onnx`: `tvm.relax.frontend.onnx.from_onnx`;
- `*.pt2`: a program saved with `torch.export.save` (torch is an optional extra);
- `"package.module:function"`: a callable returning a Relax `IRModule`.

Input shapes and dtypes come from the model where it has them and from the
user's `inputs` where it does not; a dimension left open is an error naming the
input, the dimension and how to pin it.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WasmBuildError
from ..config.settings import InputSpec

_PIN_HINT = 'pin it on the command line with --input {name}={example} or in pyproject with inputs = {{ {name} = {{ shape = [{example_list}] }} }}'


@dataclass
class LoadedModel:
    kind: str  # "onnx", "pt2", "relax"
    module: Any  # tvm.IRModule
    input_names: list[str]
    output_names: list[str] | None
    digest: str  # sha256 of the source bytes (or of the printed IRModule)
    onnx_model: Any = None  # for the onnxruntime reference
    torch_program: Any = None  # for the PyTorch reference (.pt2)


def _pin_hint(name: str, dims: list[Any]) -> str:
    example = [d if isinstance(d, int) and d > 0 else 1 for d in dims]
    return _PIN_HINT.format(name=name, example="x".join(map(str, example)), example_list=", ".join(map(str, example)))


def _check_unknown_inputs(known: list[str], pinned: dict[str, InputSpec]) -> None:
    import difflib

    for name in pinned:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the model's inputs are: {', '.join(known)}"
            raise ConfigError(f"input '{name}' is not an input of the model", fix=hint)


def _resolve_shape(name: str, dims: list[Any], spec: InputSpec | None) -> list[int]:
    """Merge the model's dims (ints; strings or None when open) with a user pin."""
    if spec is not None and spec.shape is not None:
        if len(spec.shape) != len(dims):
            raise ConfigError(
                f"input '{name}' has {len(dims)} dimensions {dims} but the pinned shape {list(spec.shape)} has {len(spec.shape)}",
                fix=_pin_hint(name, dims),
            )
        for axis, (model_dim, pinned) in enumerate(zip(dims, spec.shape)):
            if isinstance(model_dim, int) and model_dim > 0 and model_dim != pinned:
                raise ConfigError(
                    f"input '{name}' dimension {axis} is {model_dim} in the model but pinned to {pinned}",
                    fix=f"pin only open dimensions; use {model_dim} for dimension {axis}",
                )
        return list(spec.shape)
    for axis, dim in enumerate(dims):
        if not (isinstance(dim, int) and dim > 0):
            raise ConfigError(
                f"input '{name}' dimension {axis} is dynamic ({dim!r}); wasm-build compiles static shapes only",
                fix=_pin_hint(name, dims),
            )
    return [int(d) for d in dims]


# -- ONNX ---------------------------------------------------------------------------------


def _onnx_dtype(elem_type: int) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def load_onnx(path: Path, pinned: dict[str, InputSpec]) -> LoadedModel:
    import onnx
    import tvm  # noqa: F401  (loads the frontend's dependencies)
    from tvm.relax.frontend.onnx import from_onnx

    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise WasmBuildError(
            f"'{path}' is not a valid ONNX model ({type(exc).__name__}: {exc})",
            fix="check that the file is complete and really an ONNX ModelProto (re-export it)",
        ) from None
    if not model.graph.node and not model.graph.output:
        raise WasmBuildError(f"'{path}' holds an empty ONNX graph", fix="check that the file is complete (re-export it)")

    _check_supported_onnx_ops(model, path)
    _check_static_output_shapes(model, path)
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    names = [i.name for i in graph_inputs]
    _check_unknown_inputs(names, pinned)

    shape_dict: dict[str, list[int]] = {}
    dtype_dict: dict[str, str] = {}
    for value in graph_inputs:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
        spec = pinned.get(value.name)
        shape_dict[value.name] = _resolve_shape(value.name, dims, spec)
        model_dtype = _onnx_dtype(tensor_type.elem_type) if tensor_type.elem_type else None
        if spec is not None and spec.dtype and model_dtype and spec.dtype != model_dtype:
            raise ConfigError(
                f"input '{value.name}' is {model_dtype} in the model but pinned as {spec.dtype}",
                fix=f"drop the dtype or use {model_dtype}",
            )
        dtype_dict[value.name] = model_dtype or (spec.dtype if spec else None) or "float32"

    try:
        module = from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict)
    except Exception as exc:
        raise WasmBuildError(
            f"TVM's ONNX frontend could not import '{path}': {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}",
            fix="simplify or re-export the model (e.g. onnxsim, a different opset), or report the failing operator",
        ) from exc
    return LoadedModel(
        kind="onnx",
        module=module,
        input_names=names,
        output_names=[o.name for o in model.graph.output],
        digest=hashlib.sha256(data).hexdigest(),
        onnx_model=model,
    )


# Operators whose output shape depends on the input values, not only on the input shapes.
_DATA_DEPENDENT_SHAPE_OPS = {
    "NonZero": "the number of nonzero elements",
    "NonMaxSuppression": "the number of boxes kept",
    "Unique": "the number of distinct values",
    "Compress": "the number of true conditions",
}


def _check_static_output_shapes(model: Any, path: Path) -> None:
    """Refuse, by node, what an ahead-of-time executor with a static arena cannot run."""
    found = [
        (node.name or f"#{index}", node.op_type)
        for index, node in enumerate(model.graph.node)
        if node.op_type in _DATA_DEPENDENT_SHAPE_OPS and node.domain in ("", "ai.onnx")
    ]
    if found:
        nodes = ", ".join(f"'{name}' ({op}: its output size is {_DATA_DEPENDENT_SHAPE_OPS[op]})" for name, op in found)
        raise WasmBuildError(
            f"'{path.name}' has node(s) whose output shape depends on the input values: {nodes}; "
            "wasm-build plans every tensor's memory ahead of time, so it needs shapes known from the input shapes",
            fix="cut the model before those nodes (onnx.utils.extract_model) and run them in the host, "
            "or replace them by fixed-size forms (e.g. TopK with a constant k and a score threshold applied as a mask)",
        )


def _check_supported_onnx_ops(model: Any, path: Path) -> None:
    """Name every unsupported operator up front, before TVM fails on the first."""
    try:
        from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map
    except ImportError:  # private API moved: the frontend's own check still runs
        return
    supported = set(_get_convert_map()) | {"Constant", "If"}
    missing = sorted({node.op_type for node in model.graph.node if node.op_type not in supported})
    if missing:
        raise WasmBuildError(
            f"'{path.name}' uses ONNX operator(s) that TVM's Relax frontend does not support: {', '.join(missing)}",
            fix="replace them with supported operators before export, or split the model so they run outside wasm",
        )


# -- PyTorch ExportedProgram -------------------------------------------------------------


def load_pt2(path: Path, pinned: dict[str, InputSpec]) -> LoadedModel:
    try:
        import torch
    except ImportError:
        raise WasmBuildError(
            f"'{path.name}' is a PyTorch program but torch is not installed", fix="pip install 'wasm-build[torch]'"
        ) from None
    from tvm.relax.frontend.torch import from_exported_program

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise WasmBuildError(
            f"'{path}' could not be loaded with torch.export.load ({type(exc).__name__}: {exc})",
            fix="save the program with torch.export.save(torch.export.export(model, example_inputs), 'model.pt2')",
        ) from None
    module = from_exported_program(program)
    loaded = _finish_relax("pt2", module, pinned, hashlib.sha256(path.read_bytes()).hexdigest())
    loaded.torch_program = program
    return loaded


# -- Python callables returning Relax -----------------------------------------------------


def load_callable(reference: str, pinned: dict[str, InputSpec], project_dir: Path) -> LoadedModel:
    import tvm

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
    return _finish_relax("relax", module, pinned, digest)


def _finish_relax(kind: str, module: Any, pinned: dict[str, InputSpec], digest: str) -> LoadedModel:
    """Pin symbolic dims of a Relax `main` and check that every input is static."""
    import tvm
    from tvm import relax

    if "main" not in [gv.name_hint for gv in module.get_global_vars()]:
        raise WasmBuildError("the Relax module has no 'main' function", fix="name the entry function 'main'")
    main = module["main"]
    names = [p.name for p in main.params]
    _check_unknown_inputs(names, pinned)
    bindings: dict[str, int] = {}
    for param in main.params:
        ty = param.ty
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            raise WasmBuildError(f"input '{param.name}' is not a tensor with a known rank ({ty})")
        dims = [int(v.value) if isinstance(v, tvm.tirx.IntImm) else str(v) for v in ty.shape.values]
        shape = _resolve_shape(param.name, dims, pinned.get(param.name))
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


def load_model(source: str, pinned: dict[str, InputSpec], project_dir: Path) -> LoadedModel:
    """Dispatch on the source's form; paths are relative to `project_dir`."""
    if ":" in source and not source.endswith((".onnx", ".pt2")) and not Path(source).exists():
        return load_callable(source, pinned, project_dir)
    path = (project_dir / source) if not Path(source).is_absolute() else Path(source)
    if not path.is_file():
        raise WasmBuildError(
            f"model file '{source}' does not exist (looked in {path.parent})",
            fix="check the path (relative to the project directory), or use 'package.module:function' for Python sources",
        )
    if path.suffix == ".onnx":
        return load_onnx(path, pinned)
    if path.suffix == ".pt2":
        return load_pt2(path, pinned)
    raise WasmBuildError(f"'{path.name}': unknown model format '{path.suffix}'", fix="use a .onnx or .pt2 file, or 'package.module:function'")

