"""The class of a failure, from the stage where it stopped and its message."""

from __future__ import annotations

import re

EXPORT = "export error"
FRONTEND = "frontend import error"
UNSUPPORTED_OP = "unsupported op"
EXECUTOR = "executor builtin"
LOWERING = "TVM lowering bug"
RUN = "wasm run error"
NUMERICS = "numerics mismatch"
TIMEOUT = "timeout or crash"

# The order of the summary in RESULTS.md: the zoo's own problems first, then wasm-build's and TVM's.
CLASSES = (EXPORT, FRONTEND, UNSUPPORTED_OP, EXECUTOR, LOWERING, RUN, NUMERICS, TIMEOUT)

_UNSUPPORTED = re.compile(
    r"not supported by TVM|frontend does not support|unsupported (ONNX )?operator|OpNotImplemented|is not (yet )?(supported|implemented)|"
    r"Unsupported function type|No converter|not in the convert map",
    re.IGNORECASE,
)
_EXECUTOR = re.compile(r"static executor|vm\.builtin|ahead-of-time executor|not supported by the executor", re.IGNORECASE)


def classify(stage: str, message: str) -> str:
    if stage == "export":
        return EXPORT
    if stage in ("timeout", "crash"):
        return TIMEOUT
    if stage == "numerics":
        return NUMERICS
    if stage == "run":
        return RUN
    if _UNSUPPORTED.search(message):
        return UNSUPPORTED_OP
    if _EXECUTOR.search(message):
        return EXECUTOR
    if stage == "frontend":
        return FRONTEND
    return LOWERING  # compile, codegen, link: TVM's pipeline or its object code failed
