"""`wasm-build compile SOURCE`: one model into OUT/NAME/."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.project import default_cache_dir
from ..config.sources import ModelSource
from ..errors import ConfigError
from .options import add_model_options, model_settings


def add_parser(commands) -> None:
    parser = commands.add_parser("compile", help="compile one model into OUT/NAME/")
    parser.add_argument("source", help='model: .onnx, .pt2, or "package.module:function"')
    parser.add_argument("--name", help="model name (C identifier); default: the file's stem")
    parser.add_argument("--out", default="build/wasm", help="output directory (default: build/wasm)")
    parser.add_argument("--no-cache", action="store_true", help="always rebuild")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_model_options(parser)
    parser.set_defaults(func=run)


def model_name(args: argparse.Namespace) -> str:
    """--name, else the model file's stem; a Python source has no file name to take it from."""
    if args.name is not None:
        return args.name
    name = ModelSource.parse(args.source, Path.cwd()).default_name
    if name is None:
        raise ConfigError(
            f"a Python source ({args.source}) has no file name to take the model name from",
            fix="pass --name NAME (a C identifier, e.g. --name mlp)",
        )
    return name


def run(args: argparse.Namespace) -> int:
    from ..build import build_model  # the compiler: TVM takes seconds to import

    model = model_settings(args, model_name(args), args.source, "compile")
    cache = None if args.no_cache else default_cache_dir()
    result = build_model(model, Path(args.out), project_dir=Path.cwd(), cache_dir=cache, verbose=args.verbose)
    print(f"{result.name}: {result.directory}")
    return 0
