"""`wasm-build profile OUT/NAME`: each kernel's time per run in wasmtime."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "profile",
        help="time each kernel of a built model in wasmtime",
        description="Link the model in OUT/NAME/ with a timing driver, run it in wasmtime on random inputs, and "
        "print each kernel's time per run (the fastest of the runs), slowest first, named as `tune --kernels` "
        "takes them.",
    )
    parser.add_argument("directory", help="the model's output directory, e.g. build/wasm/kws")
    parser.add_argument("--runs", type=int, default=20, help="runs to take each call's fastest time from (default 20)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..wasm.profile import profile_artifact  # links with the toolchain, runs wasmtime

    profile = profile_artifact(Path(args.directory), runs=args.runs)
    print(f"{profile.name}: fastest of {profile.runs} runs in wasmtime, per kernel")
    print(profile.table())
    return 0
