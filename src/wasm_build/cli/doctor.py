"""`wasm-build doctor`: the toolchain, TVM and wasmtime this installation uses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..artifact.toolchain import find_toolchain
from ..errors import WasmBuildError


def add_parser(commands) -> None:
    parser = commands.add_parser("doctor", help="show the toolchain, TVM and wasmtime in use")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ok = True
    print(f"wasm-build {__version__} (python {sys.version.split()[0]})")
    try:
        import tvm  # reported, not required: doctor says what is missing
    except Exception as exc:
        ok = False
        print(f"tvm:       MISSING ({exc}); pip install apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post0")
    else:
        print(f"tvm:       {tvm.__version__} ({Path(tvm.__file__).parent})")
    try:
        import wasmtime
    except Exception as exc:
        ok = False
        print(f"wasmtime:  MISSING ({exc}); pip install wasmtime")
    else:
        print(f"wasmtime:  {getattr(wasmtime, '__version__', 'installed')}")
    try:
        print(f"toolchain: {find_toolchain().describe()}")
    except WasmBuildError as exc:
        ok = False
        print(f"toolchain: MISSING\n{exc}")
    return 0 if ok else 1
