"""The `wasm-build` command line (also `python -m wasm_build`).

One module per command (`compile`, `build` and `schema`, `tune`, `profile`, `run`,
`doctor`); model options come from the settings dataclasses (`options`). Commands
that compile import the compiler when they run, so `--help`, `schema` and `run`
start without loading TVM.
"""

from __future__ import annotations

import sys

from .. import __version__
from ..errors import WasmBuildError
from . import compile, doctor, profile, project, run, tune
from .parser import Parser

_COMMANDS = (compile, project, tune, profile, run, doctor)


def build_parser() -> Parser:
    parser = Parser(prog="wasm-build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"wasm-build {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WasmBuildError as exc:
        print(f"wasm-build: error: {exc}", file=sys.stderr)
        return 1


__all__ = ["main", "build_parser"]
