"""Walk and rebuild TIR nodes through their reflected fields.

TVM 0.27's Python API has no TIR visitor or mutator (``tvm.tirx.stmt_functor`` is not
in the wheel).  Every TIR node type reflects its fields, though, so :func:`visit`
walks a tree through them and :func:`rewrite` rebuilds changed nodes with
``tvm.ir.make_node``.  Used by the lowering steps of `compiler.tir` and by the schedules
(to price an epilogue).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tvm
import tvm_ffi
from tvm import tirx

# Leaves: never rebuilt (a Var's identity is its meaning; buffers are shared declarations).
_LEAVES = (tirx.Var, tirx.Buffer, tirx.IntImm, tirx.FloatImm)
_NODES = (tirx.Stmt, tvm.ir.expr.Expr)


# The lazy conditional (its operator's registered name differs between TVM releases).
_IF_THEN_ELSE = tirx.if_then_else(tirx.Var("guard", "bool"), tirx.const(0, "int32"), tirx.const(1, "int32")).op


def is_if_then_else(expr: Any) -> bool:
    """Whether ``expr`` is a call of ``T.if_then_else`` (which evaluates only the branch taken)."""
    return isinstance(expr, tvm.ir.expr.Call) and expr.op.same_as(_IF_THEN_ELSE)


@functools.cache
def field_names(node_type: type) -> tuple[str, ...]:
    """Reflected fields of a node type, its ancestors' first (read once per type: a walk
    visits every node of every kernel it is given)."""
    names: list[str] = []
    info = node_type.__tvm_ffi_type_info__
    while info is not None:
        names = [field.name for field in info.fields] + names
        info = info.parent_type_info
    return tuple(names)


def _fields(node) -> tuple[str, ...]:
    return field_names(type(node))


def _children(node):
    for name in _fields(node):
        value = getattr(node, name)
        if isinstance(value, (*_NODES, tvm_ffi.Array)) and not isinstance(value, _LEAVES):
            yield name, value


def _is_inner(node: Any) -> bool:
    """Whether a walk goes into ``node``: an array, or a statement or expression not a leaf."""
    return isinstance(node, tvm_ffi.Array) or (isinstance(node, _NODES) and not isinstance(node, _LEAVES))


def _items(node: Any) -> list[tuple[Any, Any]]:
    """What a walk goes through below ``node``: an array's items, a node's children."""
    return list(enumerate(node)) if isinstance(node, tvm_ffi.Array) else list(_children(node))


# Both walks keep their own stack: an unrolled recurrence concatenates hundreds of steps, which
# TVM writes as a chain of as many nested `if_then_else`, deeper than Python's recursion limit.


def visit(node: Any, callback: Callable[[Any], None]) -> None:
    """Post-order walk over statements and expressions (leaves are not visited)."""
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        item, expanded = stack.pop()
        if not _is_inner(item):
            continue
        if expanded:
            callback(item)
            continue
        if not isinstance(item, tvm_ffi.Array):
            stack.append((item, True))
        stack.extend((child, False) for _, child in reversed(_items(item)))


def rewrite(node: Any, replace: Callable[[Any], Any]) -> Any:
    """``node`` with every expression or statement ``e`` for which ``replace(e)`` is not None
    replaced (children first); unchanged subtrees are returned as they are."""
    if not _is_inner(node):
        return node
    # Frames: a node, what lies below it, and those items rewritten so far.
    stack: list[tuple[Any, list[tuple[Any, Any]], list[Any]]] = [(node, _items(node), [])]
    while True:
        current, items, done = stack[-1]
        if len(done) < len(items):
            child = items[len(done)][1]
            if _is_inner(child):
                stack.append((child, _items(child), []))
            else:
                done.append(child)
            continue
        stack.pop()
        new = _rebuilt(current, items, done, replace)
        if not stack:
            return new
        stack[-1][2].append(new)


def _rebuilt(node: Any, items: list[tuple[Any, Any]], done: list[Any], replace: Callable[[Any], Any]) -> Any:
    """``node`` over its rewritten items ``done``, then through ``replace`` (not an array)."""
    changed = {key: new for (key, old), new in zip(items, done) if new is not old}
    if isinstance(node, tvm_ffi.Array):
        return done if changed else node
    if changed:
        node = with_fields(node, **changed)
    new = replace(node)
    return node if new is None else new


def with_fields(node: Any, **changed: Any) -> Any:
    """``node`` rebuilt with the reflected fields ``changed`` set (the others as they are)."""
    fields = {name: getattr(node, name) for name in _fields(node)}
    return tvm.ir.make_node(type(node).__tvm_ffi_type_info__.type_key, **{**fields, **changed})


def substitute(node: Any, var: tirx.Var, value: tirx.PrimExpr) -> Any:
    """``node`` with every use of ``var`` replaced by ``value`` (no binding of ``var`` inside
    ``node`` is expected: loop and block variables are bound once)."""

    def replaced(item: Any) -> Any:
        if isinstance(item, tirx.Var) and item.same_as(var):
            return value
        if isinstance(item, tvm_ffi.Array) and any(isinstance(x, tirx.Var) and x.same_as(var) for x in item):
            return [replaced(x) for x in item]
        return item

    def replace(expr: Any) -> Any:
        changed = {name: new for name in _fields(expr) if (new := replaced(old := getattr(expr, name))) is not old}
        return with_fields(expr, **changed) if changed else None

    return replaced(node) if isinstance(node, tirx.Var) else rewrite(node, replace)


def rewriting_pass(name: str, replace: Callable[[Any], Any]) -> tvm.transform.Pass:
    """A pass that applies :func:`rewrite` with ``replace`` to every PrimFunc's body (the
    function itself returned where nothing changed)."""
    return body_rewriting_pass(name, lambda _func: replace)


def integer_lets(body: tirx.Stmt) -> tvm.sym.Analyzer:
    """An analyzer that knows the integer ``LetStmt`` bindings (TVM's CSE names index parts)."""
    analyzer = tvm.sym.Analyzer()

    def bind(node):
        if isinstance(node, tirx.LetStmt) and isinstance(node.var.ty, tvm.ir.PrimType) and str(node.var.ty).startswith("int"):
            analyzer.bind(node.var, node.value)

    visit(body, bind)
    return analyzer


def is_const(expr: Any, value: int) -> bool:
    """Whether ``expr`` is the integer constant ``value``."""
    return isinstance(expr, tirx.IntImm) and int(expr) == value


def attribute_names(func: tirx.PrimFunc, attr: str) -> set[str]:
    """The names a kernel's ``attr`` lists (the buffers a schedule marked for a lowering step)."""
    return set(func.attrs.get(attr, [])) if func.attrs is not None else set()


def body_rewriting_pass(name: str, replacer: Callable[[tirx.PrimFunc], Callable[[Any], Any] | None]) -> tvm.transform.Pass:
    """A pass rewriting each kernel's body (`rewrite`) with the replace function
    ``replacer(kernel)`` makes for it; a kernel it makes none for (None) is left as it is, and so
    is one the rewrite does not change."""

    @tirx.transform.prim_func_pass(opt_level=0, name=name)
    def _pass(func: tirx.PrimFunc, _mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tirx.PrimFunc:
        replace = replacer(func)
        if replace is None:
            return func
        body = rewrite(func.body, replace)
        return func if body.same_as(func.body) else func.with_body(body)

    return _pass
