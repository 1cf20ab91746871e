"""Module-level helpers the compiler's passes share."""

from __future__ import annotations

from collections.abc import Mapping

import tvm


def with_functions(mod: tvm.IRModule, updates: Mapping[tvm.ir.GlobalVar, tvm.ir.BaseFunc]) -> tvm.IRModule:
    """A new module with `updates` in place of those functions: passes must not change their
    input (tuning reuses it to extract tasks), and attributes and global infos carry over."""
    if not updates:
        return mod
    functions = dict(mod.functions_items())
    functions.update(updates)
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
