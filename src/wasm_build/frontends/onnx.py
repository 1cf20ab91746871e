"""ONNX models through TVM's Relax frontend (`tvm.relax.frontend.onnx.from_onnx`), with
wasm-build's checks first: open dimensions pinned or named, operators TVM lacks rewritten
into ones it has (`onnx_rewrites`), every remaining unsupported operator named at once,
data-dependent output shapes refused by node."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import onnx
import tvm
from tvm.relax.frontend.onnx import from_onnx
# TVM's table of converters: private, but the only way to name every missing operator at once
# (apache-tvm is pinned; a rename fails here, loudly, instead of dropping the check).
from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

from ..config.settings import DimSpec, InputSpec
from ..config.sources import external_data_files, tensors_of
from ..errors import ConfigError, WasmBuildError
from .loaded import LoadedModel
from .onnx_rewrites import REWRITTEN_MICROSOFT_OPS, apply_rewrites
from .shapes import bound_dims, check_unknown_inputs, resolve_shape, with_bounds


def _onnx_dtype(elem_type: int) -> str:
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _read(path: Path) -> tuple[Any, str]:
    """The model with its external data (found next to the model, wherever the build runs)
    and a digest of the model and every external data file."""
    data = path.read_bytes()
    digest = hashlib.sha256(data)
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise WasmBuildError(
            f"'{path}' is not a valid ONNX model ({type(exc).__name__}: {exc})",
            fix="check that the file is complete and really an ONNX ModelProto (re-export it)",
        ) from None
    external = external_data_files(path)
    if external:
        directory = path.parent.resolve()
        for file in external:
            if not file.resolve().is_relative_to(directory):
                raise WasmBuildError(
                    f"'{path.name}' keeps tensors in '{file}', outside the model's directory",
                    fix="keep external data files next to the .onnx file (onnx.save(..., location='NAME.data'))",
                )
            if not file.is_file():
                raise WasmBuildError(
                    f"'{path.name}' keeps tensors in '{file.name}', which is missing (looked in {file.parent})",
                    fix="copy the external data file next to the .onnx file, or re-export with the weights inside",
                )
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        onnx.external_data_helper.load_external_data_for_model(model, str(directory))
    return model, digest.hexdigest()


def load_onnx(path: Path, pinned: dict[str, InputSpec], dims: Mapping[str, DimSpec] | None = None) -> LoadedModel:
    model, digest = _read(path)
    if not model.graph.node and not model.graph.output:
        raise WasmBuildError(f"'{path}' holds an empty ONNX graph", fix="check that the file is complete (re-export it)")

    _check_opsets_and_domains(model, path)
    _check_numeric_tensors(model, path)
    names, shapes, dtype_dict = _signature(model, pinned)
    bound = bound_dims(_symbols(shapes), dict(dims or {}))
    # Operators TVM lacks are rewritten into ones it has, for the pinned shapes; onnxruntime,
    # the smoke test's reference, still runs the original model.
    imported = apply_rewrites(model, shapes)
    _check_supported_onnx_ops(imported, path)
    _check_static_output_shapes(imported, path)

    # One variable per symbolic dimension, shared by the inputs that have it.
    variables: dict[str, Any] = {}
    shape_dict = {
        name: [variables.setdefault(d, tvm.tirx.Var(d, "int64")) if isinstance(d, str) else d for d in shape]
        for name, shape in shapes.items()
    }
    try:
        module = with_bounds(from_onnx(imported, shape_dict=shape_dict, dtype_dict=dtype_dict), bound)
    except Exception as exc:
        message = f"TVM's ONNX frontend could not import '{path}': {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        fix = "simplify or re-export the model (e.g. onnxsim, a different opset), or report the failing operator"
        refused = _onnxruntime_refusal(model)
        if refused:
            # An exporter's slip (a complex Cast, a 2-D Tile repeats): the model is broken, not TVM.
            message += f"; onnxruntime cannot load the model either: {refused}"
            fix = "the export is not valid ONNX: re-export it (another exporter or opset, torch.export), or fix the node named"
        raise WasmBuildError(message, fix=fix) from exc
    return LoadedModel(
        kind="onnx",
        module=module,
        input_names=names,
        output_names=[o.name for o in model.graph.output],
        digest=digest,
        onnx_model=model,
        dims=bound,
    )


def _signature(model: Any, pinned: dict[str, InputSpec]) -> tuple[list[str], dict[str, list[int | str]], dict[str, str]]:
    """The model's inputs (initializers excluded), with their shapes (the model's dims merged
    with the user's: sizes, and names of symbolic dimensions) and dtypes."""
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    names = [i.name for i in graph_inputs]
    check_unknown_inputs(names, pinned)

    shape_dict: dict[str, list[int | str]] = {}
    dtype_dict: dict[str, str] = {}
    for value in graph_inputs:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
        spec = pinned.get(value.name)
        shape_dict[value.name] = resolve_shape(value.name, dims, spec)
        model_dtype = _onnx_dtype(tensor_type.elem_type) if tensor_type.elem_type else None
        if spec is not None and spec.dtype and model_dtype and spec.dtype != model_dtype:
            raise ConfigError(
                f"input '{value.name}' is {model_dtype} in the model but pinned as {spec.dtype}",
                fix=f"drop the dtype or use {model_dtype}",
            )
        dtype_dict[value.name] = model_dtype or (spec.dtype if spec else None) or "float32"
    return names, shape_dict, dtype_dict


def _symbols(shapes: dict[str, list[int | str]]) -> dict[str, tuple[str, list[int | str]]]:
    """Each symbolic dimension, with the first input that has it (for messages)."""
    symbols: dict[str, tuple[str, list[int | str]]] = {}
    for name, shape in shapes.items():
        for dim in shape:
            if isinstance(dim, str):
                symbols.setdefault(dim, (name, shape))
    return symbols


_DEFAULT_DOMAINS = ("", "ai.onnx")
_TRAINING_DOMAIN = "ai.onnx.preview.training"
# onnxruntime's contrib operators that TVM's frontend implements (it matches operators by name only).
_MICROSOFT_OPS = {"BiasGelu", "FastGelu", "Gelu", "SkipLayerNormalization", "EmbedLayerNormalization"}


def _check_opsets_and_domains(model: Any, path: Path) -> None:
    """TVM reads operators by name alone: a custom domain's `Relu` would compile as ONNX's, and a
    future opset as the newest it knows. Say so before anything is built."""
    versions = {opset.domain: opset.version for opset in model.opset_import}
    default = next((versions[d] for d in _DEFAULT_DOMAINS if d in versions), None)
    if default is None:
        raise WasmBuildError(
            f"'{path.name}' declares no opset for ONNX's default domain (its opset_import is "
            f"{sorted(versions.items()) or 'empty'})",
            fix="re-export the model, or add the opset it was written for: "
            "model.opset_import.append(onnx.helper.make_opsetid('', 17))",
        )
    newest = onnx.defs.onnx_opset_version()
    if not 1 <= default <= newest:
        raise WasmBuildError(
            f"'{path.name}' uses ONNX opset {default}; this installation knows opsets 1 to {newest}",
            fix=f"export the model with opset {min(max(default, 1), newest)} or lower (e.g. torch.onnx.export(..., opset_version=17))",
        )
    foreign = sorted(
        {
            f"{node.domain}:{node.op_type}"
            for node in _nodes(model.graph)
            if node.domain not in _DEFAULT_DOMAINS
            and not (node.domain == "com.microsoft" and node.op_type in _MICROSOFT_OPS | REWRITTEN_MICROSOFT_OPS)
        }
    )
    training = [op for op in foreign if op.startswith(_TRAINING_DOMAIN + ":")]
    if training:
        raise WasmBuildError(
            f"'{path.name}' uses training operator(s) {', '.join(training)}; wasm-build compiles inference graphs only",
            fix="export the model for inference (e.g. model.eval() under torch.no_grad()), and compute gradients in the host",
        )
    if foreign:
        raise WasmBuildError(
            f"'{path.name}' uses operator(s) from custom domains that wasm-build cannot compile: {', '.join(foreign)}",
            fix="replace them with standard ONNX operators before export, or run that part of the model in the host",
        )


def _nodes(graph: Any):
    """Every node of a graph, subgraphs included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _nodes(subgraph)


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


def _onnxruntime_refusal(model: Any) -> str | None:
    """onnxruntime's reason for refusing to load `model` (its checks find exporters' slips that
    ONNX's checker lets through), or None when it loads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # the reason is reported here, not on stderr
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors derive from Exception alone
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None


def _check_numeric_tensors(model: Any, path: Path) -> None:
    """Refuse string tensors by name: the executor's tensors are numbers in linear memory."""
    graph, string = model.graph, onnx.TensorProto.STRING
    typed = [v for v in [*graph.input, *graph.output, *graph.value_info] if v.type.WhichOneof("value") == "tensor_type"]
    strings = [v.name for v in typed if v.type.tensor_type.elem_type == string]
    strings += [t.name for t in tensors_of(graph) if t.data_type == string]
    if strings:
        raise WasmBuildError(
            f"'{path.name}' has string tensors ({', '.join(repr(name) for name in sorted(set(strings)))}); "
            "wasm-build compiles numeric tensors only",
            fix="do the string processing (normalizing, tokenizing) in the host and pass the model token ids (int64)",
        )


def _check_supported_onnx_ops(model: Any, path: Path) -> None:
    """Name every unsupported operator up front, before TVM fails on the first."""
    supported = set(_get_convert_map()) | {"Constant", "If"}
    missing = sorted({node.op_type for node in model.graph.node if node.op_type not in supported})
    if missing:
        raise WasmBuildError(
            f"'{path.name}' uses ONNX operator(s) that TVM's Relax frontend does not support: {', '.join(missing)}",
            fix="replace them with supported operators before export, or split the model so they run outside wasm",
        )
