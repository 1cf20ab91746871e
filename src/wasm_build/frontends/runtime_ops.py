"""Relax operators TVM lowers to functions of its C++ runtime (sorting), which a wasm-build
module does not have: refused by name after import, before TVM's compiler fails on them with a
message about its internals ("Cannot treat type `ir.Call` as type `ir.Expr`")."""

from __future__ import annotations

from typing import Any

from ..compiler.irmodule import op_calls
from ..errors import WasmBuildError

# Relax operator -> what the user wrote.
RUNTIME_OPS = {"relax.sort": "sort", "relax.argsort": "argsort", "relax.topk": "topk"}


def check_runtime_ops(module: Any, source: str, kind: str) -> None:
    """Raise if `module` (a frontend's Relax IRModule, from a source of `kind`) calls an operator
    of `RUNTIME_OPS`."""
    found = {RUNTIME_OPS[call.op.name] for call in op_calls(module, lambda call: call.op.name in RUNTIME_OPS)}
    if found:
        raise WasmBuildError(
            f"'{source}' sorts ({', '.join(sorted(found))}): TVM computes sorting with its C++ runtime, which a "
            "wasm module does not have",
            fix=("a TopK of up to 64 float values with a constant k and static shapes is computed as rounds of arg-max; "
                 "otherwise sort in the host" if kind == "onnx" else
                 "export the model to ONNX, where a TopK of up to 64 values becomes rounds of arg-max, or sort in the host"),
        )
