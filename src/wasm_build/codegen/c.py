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
from .plan import ExecutorPlan, FloatArg, IntArg, KernelArg, TensorArg

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
    raise TypeError(arg)


def _describe_arg(arg: KernelArg, plan: ExecutorPlan) -> str:
    if isinstance(arg, TensorArg):
        tensor = plan.tensors[arg.tensor]
        return f"t{arg.tensor}:{tensor.label}"
    return str(arg.value)


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
        "calls": [
            {
                "kernel": call.kernel,
                "symbol": call.symbol,
                "args": [_render_arg(arg, name) for arg in call.args],
                "comment": ", ".join(_describe_arg(arg, plan) for arg in call.args),
            }
            for call in plan.calls
        ],
        "kernels": plan.kernels,
        "inputs": [sig.describe() for sig, _ in plan.inputs],
        "outputs": [sig.describe() for sig, _ in plan.outputs],
        "signatures": {"input": [sig for sig, _ in plan.inputs], "output": [sig for sig, _ in plan.outputs]},
        "tensor_of": {"input": [i for _, i in plan.inputs], "output": [i for _, i in plan.outputs]},
        "init_name": f"{init_functions(name, weights_mode)[0]}()",
        "init_call": f"{name}_init()" if weights_mode == "embed" else f'{name}_init_from_file("{name}.weights")',  # the header's example
    }
    header = templating.render("c/model.h.j2", context)
    source = templating.render("c/model.c.j2", context)
    return GeneratedSources(header=header, source=source, weights=weights)

