"""Render an `ExecutorPlan` as C: the model's header and its executor source.

The C comes from the Jinja templates in `codegen/templates/c/`, so the
generated files read like hand-written code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .. import __version__
from . import templating
from .abi import ALIGNMENT, init_functions
from .plan import ExecutorPlan, FloatArg, HeapArg, IntArg, KernelArg, KernelCall, PlannedTensor, Signature, TensorArg
from .shape_heap import HeapDim

WEIGHTS_BLOB = "weights.bin"


@dataclass(frozen=True)
class GeneratedSources:
    header: str  # NAME.h
    source: str  # NAME.c
    weights: bytes  # embedded through #embed, or written to NAME.weights


def _render_arg(arg: KernelArg, name: str) -> str:
    if isinstance(arg, TensorArg):
        return f"wb_tensor_arg(&{name}_tensors[{arg.tensor}])"
    if isinstance(arg, IntArg):
        return f"wb_int_arg({arg.value}LL)"
    if isinstance(arg, FloatArg):
        return f"wb_float_arg({arg.value!r})"
    if isinstance(arg, HeapArg):
        return f"wb_int_arg({name}_heap[{arg.slot}])"
    raise TypeError(arg)


def _describe_arg(arg: KernelArg, plan: ExecutorPlan) -> str:
    if isinstance(arg, TensorArg):
        tensor = plan.tensors[arg.tensor]
        return f"t{arg.tensor}:{tensor.label}"
    if isinstance(arg, HeapArg):
        return plan.heap.slot_text(arg.slot) if plan.heap else f"heap[{arg.slot}]"
    return str(arg.value)


def _call(call: KernelCall, plan: ExecutorPlan, name: str) -> dict:
    args = [_render_arg(arg, name) for arg in call.args]
    chunks = None
    if call.chunks is not None:
        count = call.chunks.count
        chunks = {
            "rows": call.chunks.rows,
            "count": f"{name}_heap[{count.slot}]" if isinstance(count, HeapDim) else str(count),
            "parts": [],
        }
        for part in call.chunks.args:
            arg = call.args[part.arg]
            assert isinstance(arg, TensorArg)
            chunks["parts"].append(
                {"arg": part.arg, "tensor": arg.tensor, "shape": ", ".join(map(str, part.shape)), "row_bytes": part.row_bytes}
            )
            args[part.arg] = f"wb_tensor_arg(&part{part.arg})"
    return {
        "kernel": call.kernel,
        "symbol": call.symbol,
        "args": args,
        "comment": ", ".join(_describe_arg(arg, plan) for arg in call.args),
        "chunks": chunks,
    }


def _signature(sig: Signature) -> dict:
    """An input or output for the header's comments and constants."""
    return {**sig.describe(), "shape": list(sig.dims or sig.shape), "nbytes": sig.nbytes, "dynamic": sig.dims is not None}


def _info(sig: Signature) -> dict:
    """An input or output as NAME_input_info reports it: -1 for a symbolic dimension."""
    shape = list(sig.shape) if sig.dims is None else [d if isinstance(d, int) else -1 for d in sig.dims]
    return {"name": sig.name, "dtype": sig.dtype.name, "shape": shape, "nbytes": sig.nbytes}


# C element types of the integer inputs that may index a table.
_C_INTEGERS = {
    "int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
    "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t", "uint64": "uint64_t",
}


def _value_checks(plan: ExecutorPlan) -> list[dict]:
    """Inputs whose values index a table: the run checks every value before any kernel."""
    return [
        {"input": i, "ctype": _C_INTEGERS[sig.dtype.name], "min": sig.values.min, "max": sig.values.max}
        for i, (sig, _) in enumerate(plan.inputs)
        if sig.values is not None and sig.dtype.name in _C_INTEGERS
    ]


def _tensor_shape(tensor: PlannedTensor, plan: ExecutorPlan) -> str:
    """A tensor's shape for the comments of the generated C."""
    if tensor.dims is None:
        return ", ".join(map(str, tensor.shape))
    assert plan.heap is not None
    dims = ", ".join(str(d) if isinstance(d, int) else plan.heap.slot_text(d.slot) for d in tensor.dims)
    return f"{dims}; at most {', '.join(map(str, tensor.shape))}"


def _dims_context(plan: ExecutorPlan, name: str) -> dict:
    """What the templates need to read, check and apply symbolic dimensions at run time."""
    if not plan.dynamic:
        return {"dynamic": False}
    heap = plan.heap
    assert heap is not None
    dims = [
        {"index": i, "name": d.name, "NAME": d.name.upper(), "min": d.min, "max": d.max, "slot": d.slot}
        for i, d in enumerate(heap.dims)
    ]
    index_of_slot = {d.slot: i for i, d in enumerate(heap.dims)}
    stored_by = {axis.slot: axis for axis in heap.input_axes if axis.store}
    binds, tables, at = [], [], 0
    for i, (sig, tensor_index) in enumerate(plan.inputs):
        tensor = plan.tensors[tensor_index]
        axes = []
        table = []
        for axis, dim in enumerate(tensor.dims or tensor.shape):
            entry = {"axis": axis, "at": at + axis}
            if isinstance(dim, HeapDim):
                origin = stored_by[dim.slot]
                dim_name = heap.dims[index_of_slot[dim.slot]].name
                entry.update(slot=dim.slot, dim=dim_name)
                if origin.input == i and origin.axis == axis:
                    entry["kind"] = "store"
                else:
                    entry.update(kind="equal", origin_input=origin.input, origin_axis=origin.axis)
                table.append(index_of_slot[dim.slot])
            else:
                entry.update(kind="static", value=dim)
                table.append(-1)
            axes.append(entry)
        binds.append({"index": i, "name": sig.name, "shape": list(sig.dims or sig.shape), "axes": axes})
        tables.append(table)
        at += len(tensor.shape)
    used_slots = {d.slot for t in plan.tensors for d in (t.dims or ()) if isinstance(d, HeapDim)}
    return {
        "dynamic": True,
        "dims": dims,
        "heap_size": heap.size,
        "binds": binds,
        "input_dim_tables": tables,
        "input_shapes_len": at,
        "output_shapes_len": sum(len(sig.shape) for sig, _ in plan.outputs),
        "max_input_shapes": [d for sig, _ in plan.inputs for d in sig.shape],
        "shape_functions": [_call(call, plan, name) for call in plan.shape_functions],
        # Derived dimensions that may fall below 1 for some input sizes within the bounds.
        "derived_checks": [{"slot": d.slot, "text": d.text} for d in heap.derived if d.slot in used_slots and d.min < 1],
        "shape_sets": [
            {"index": t.index, "axes": [(a, d.slot) for a, d in enumerate(t.dims) if isinstance(d, HeapDim)]}
            for t in plan.tensors
            if t.dims is not None
        ],
    }


def render(plan: ExecutorPlan, name: str, weights_mode: str, symbol_prefix: str) -> GeneratedSources:
    weights = bytes(plan.weights)
    context = {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "archive": f"lib{name}.a",
        "prefix": symbol_prefix,
        "alignment": ALIGNMENT,
        "arena_size": max(plan.arena_size, ALIGNMENT),
        "weights_mode": weights_mode,
        "weights_nbytes": len(weights),
        "weights_file": WEIGHTS_BLOB,
        "weights_sha256": list(hashlib.sha256(weights).digest()),
        "tensors": plan.tensors,
        "tensor_shapes": {t.index: _tensor_shape(t, plan) for t in plan.tensors},
        "calls": [_call(call, plan, name) for call in plan.calls],
        "init_calls": [_call(call, plan, name) for call in plan.init_calls],
        "derived_size": max(plan.derived_size, ALIGNMENT),
        "kernels": plan.kernels,
        "inputs": [_signature(sig) for sig, _ in plan.inputs],
        "outputs": [_signature(sig) for sig, _ in plan.outputs],
        "info": {"input": [_info(sig) for sig, _ in plan.inputs], "output": [_info(sig) for sig, _ in plan.outputs]},
        "tensor_of": {"input": [i for _, i in plan.inputs], "output": [i for _, i in plan.outputs]},
        "value_checks": _value_checks(plan),
        "init_name": f"{init_functions(name, weights_mode)[0]}()",
        "init_call": f"{name}_init()" if weights_mode == "embed" else f'{name}_init_from_file("{name}.weights")',  # the header's example
        **_dims_context(plan, name),
    }
    header = templating.render("c/model.h.j2", context)
    source = templating.render("c/model.c.j2", context)
    return GeneratedSources(header=header, source=source, weights=weights)

