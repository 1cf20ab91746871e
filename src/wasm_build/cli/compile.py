"""`wasm-build compile SOURCE`: one model into OUT/NAME/.

`wasm-build compile --settings FILE` compiles the model a settings file describes
(`config.settings_file`; CMake's configure step writes one per model) instead of
SOURCE and options; options given as well override the file's keys.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.project import default_cache_dir
from ..config.settings import ModelSettings, from_dict, to_dict
from ..config.settings_file import read_settings_file
from ..config.sources import ModelSource
from ..errors import ConfigError
from .options import add_model_options, model_settings, model_table


def add_parser(commands) -> None:
    parser = commands.add_parser("compile", help="compile one model into OUT/NAME/")
    parser.add_argument("source", nargs="?", help='model: .onnx, .pt2, or "package.module:function"')
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="compile the model of this settings file (JSON; CMake's configure step writes them) "
        "instead of SOURCE; options given as well override its keys",
    )
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


def model_of(args: argparse.Namespace) -> tuple[ModelSettings, Path, Path | None]:
    """The model the command line describes, the directory it resolves from, and the build cache."""
    if args.settings is None:
        if args.source is None:
            raise ConfigError(
                "no model to compile", fix="give a SOURCE (.onnx, .pt2 or package.module:function), or --settings FILE"
            )
        cache = None if args.no_cache else default_cache_dir()
        return model_settings(args, model_name(args), args.source, "compile"), Path.cwd(), cache
    if args.source is not None or args.name is not None:
        raise ConfigError(
            "--settings names the model and its source: SOURCE and --name cannot be given as well",
            fix=f"drop them, or compile without --settings {args.settings}",
        )
    file = read_settings_file(args.settings)
    table = to_dict(file.model)
    for key, value in model_table(args).items():  # options given on the command line win
        table[key] = {**table.get(key, {}), **value} if isinstance(value, dict) else value
    model = from_dict(ModelSettings, table, path=f"wasm-build compile --settings {args.settings}")
    if args.no_cache or not file.cache:
        cache = None
    else:
        cache = Path(file.cache_dir) if file.cache_dir is not None else default_cache_dir()
    return model, Path(file.project_dir), cache


def run(args: argparse.Namespace) -> int:
    from ..build import build_model  # the compiler: TVM takes seconds to import

    model, project_dir, cache = model_of(args)
    result = build_model(model, Path(args.out), project_dir=project_dir, cache_dir=cache, verbose=args.verbose)
    print(f"{result.name}: {result.directory}")
    return 0
