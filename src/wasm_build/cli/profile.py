"""`wasm-build profile OUT/NAME`: each kernel's time per run in wasmtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


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
    parser.add_argument(
        "--dim",
        dest="dims",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="run a symbolic dimension at SIZE (default: its upper bound; repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..wasm.profile import profile_artifact  # links with the toolchain, runs wasmtime

    sizes = {}
    for text in args.dims:
        name, _, size = text.partition("=")
        if not size.isdigit():
            raise ConfigError(f"--dim {text!r} is not NAME=SIZE", fix="write it like --dim seq=16")
        sizes[name] = int(size)
    profile = profile_artifact(Path(args.directory), runs=args.runs, sizes=sizes)
    at = f" at {', '.join(f'{k}={v}' for k, v in sizes.items())}" if sizes else ""
    print(f"{profile.name}: fastest of {profile.runs} runs in wasmtime{at}, per kernel")
    print(profile.table())
    return 0
