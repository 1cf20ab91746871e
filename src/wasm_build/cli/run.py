"""`wasm-build run MODULE [ARGS...]`: a WASI program in wasmtime (no wasmtime CLI needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..wasm.command import run_program


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "run",
        help="run a WASI command module (a program linked with a model) in wasmtime",
        description="Run MODULE's _start in wasmtime with WASI: arguments after MODULE are its argv, stdin, stdout "
        "and stderr are this process's, and the current directory is visible to it (so NAME_init_from_file "
        "finds NAME.weights). The exit status is the program's.",
    )
    parser.add_argument("module", help="a .wasm command module, e.g. main.wasm")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_program(Path(args.module), args.args)
