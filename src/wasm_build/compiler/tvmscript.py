"""TVMScript PrimFuncs parsed without TVM's decorator looking at the caller's stack.

``@T.prim_func`` calls ``inspect.stack()`` when it is applied, and again when the parser
evaluates the decorator to learn the dialect: that reads the source of every frame on the
stack, looking each file's module up among ``sys.modules`` (thousands, once torch is
loaded). Under an import or a pass callback that took a quarter of a second per function:
seven seconds of every build's start for the dot-product intrinsics alone. The stack is
only needed for names that appear in annotations alone (``from __future__ import
annotations`` keeps them out of the closure); here the caller passes them.

Use it as ``@tvmscript.prim_func(s_tir=True, dtype=dtype)`` (the parser finds ``s_tir``
in the decorator's source, as it does on ``T.prim_func``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tvm import tirx
from tvm.script.parser._core import parse
from tvm.script.parser.core.utils import inspect_function_capture


class _PrimFuncParser:
    dispatch_token = "tirx"  # what the parser asks of a function's decorator

    def __init__(self, names: dict[str, Any]):
        self.names = names

    def __call__(self, func: Callable) -> tirx.PrimFunc:
        return parse(func, {**inspect_function_capture(func), **self.names})


def prim_func(*, s_tir: bool = False, **names: Any) -> _PrimFuncParser:
    """A decorator parsing a function as a PrimFunc; ``names`` are the values of names its
    annotations use that are neither globals nor closure variables."""
    del s_tir  # read from the decorator's source by the parser
    return _PrimFuncParser(names)
