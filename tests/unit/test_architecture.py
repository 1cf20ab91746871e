"""The package's shape: no import cycles among its modules, no ImportError swallowed to switch a
feature off silently (a broken import must fail the build, not drop the SIMD schedules)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import SRC

PACKAGE = SRC / "wasm_build"
# Optional dependencies whose absence has a documented fallback (said to the user where it matters).
_OPTIONAL = {
    ("wasm_build.tuning.tune", "xgboost"),  # candidates drawn at random, with a message
    ("wasm_build.wasm.engine", "wasmtime"),  # wasmtime-py internals for the fast call; else the public call
    ("wasm_build.frontends.torch", "torch"),  # .pt2 sources need the torch extra: an error says so
    ("wasm_build.artifact.toolchain", "ziglang"),  # one toolchain candidate of several; the error lists them
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py") if "cmake" not in p.parts}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        is_package = (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").is_file() or name == "wasm_build"
        for node in tree.body:  # module level only: what runs when the module is imported
            targets = []
            if isinstance(node, ast.ImportFrom):
                base, *names = _resolve(name, is_package, node)
                # `from . import submodule` needs the submodule; `from .m import f` needs m.
                targets = [n for n in names if n in modules] or [base]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_error_switches_a_feature_off():
    found = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            caught = {
                n.id for handler in node.handlers if handler.type is not None
                for n in ast.walk(handler.type) if isinstance(n, ast.Name)
            }
            if "ImportError" not in caught and "ModuleNotFoundError" not in caught:
                continue
            imported = {
                alias.name.split(".")[0] if isinstance(stmt, ast.Import) else (stmt.module or "").split(".")[0]
                for stmt in ast.walk(ast.Module(body=node.body, type_ignores=[]))
                if isinstance(stmt, (ast.Import, ast.ImportFrom))
                for alias in (stmt.names if isinstance(stmt, ast.Import) else [None])
            }
            for module in imported:
                if (name, module) not in _OPTIONAL:
                    found.append(f"{name} catches ImportError around {module}")
    assert found == []
