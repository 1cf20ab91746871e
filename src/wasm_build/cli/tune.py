"""`wasm-build tune SOURCE`: search a model's kernel schedules in wasmtime into a tuning database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config.sources import ModelSource
from ..errors import ConfigError, WasmBuildError
from .options import add_model_options, model_settings

# The keys that change which kernels a build makes: tuning must see the kernels builds compile.
_KERNEL_KEYS = ("simd", "relaxed-simd", "winograd-budget")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "tune",
        help="tune a model's kernels, measured in wasmtime, into a tuning database",
        description=(
            "Search schedules for every kernel of the model with meta-schedule, timing each candidate "
            "in wasmtime, and merge the best into FILE (created if missing, continued if present). "
            "Builds apply FILE with `compile --tuning-database FILE` or `tuning.database` in pyproject.toml."
        ),
    )
    parser.add_argument("source", help='model: .onnx, .pt2, or "package.module:function"')
    parser.add_argument("--name", help="model name (C identifier); default: the file's stem")
    parser.add_argument("--database", required=True, metavar="FILE", help="tuning database to write, e.g. tuning/kws.json")
    parser.add_argument("--trials", type=int, required=True, help="meta-schedule trials in total, over all kernels")
    parser.add_argument("--time-budget", type=float, metavar="S", help="stop after about this many seconds")
    parser.add_argument("--kernels", action="append", default=[], metavar="PATTERN",
                        help='search only the kernels matching this glob pattern, e.g. "fused_conv2d7_*" (repeatable)')
    add_model_options(parser, only=_KERNEL_KEYS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The compiler and meta-schedule: TVM takes seconds to import.
    from ..compiler.target import TargetOptions
    from ..frontends import load_model
    from ..tuning import tune_model

    if args.trials < 1:
        raise ConfigError(f"--trials {args.trials}: tuning needs at least one trial", fix="e.g. --trials 64")
    # A Python source has no file name to take the model's name from: tuning does not need one.
    name = args.name or ModelSource.parse(args.source, Path.cwd()).default_name or "model"
    tuning = {"trials": args.trials, "database": args.database, "kernels": args.kernels}
    if args.time_budget is not None:
        tuning["time-budget"] = args.time_budget
    model = model_settings(args, name, args.source, "tune", tuning=tuning)

    def log(message: str) -> None:
        print(f"wasm-build: {model.name}: {message}", file=sys.stderr, flush=True)

    project_dir = Path.cwd()
    try:
        loaded = load_model(model.source, model.inputs, project_dir, model.dims)
        tune_model(loaded.module, TargetOptions.for_model(model), str(project_dir / args.database), model.tuning, log=log)
    except WasmBuildError as exc:
        raise exc.with_context(model=model.name, stage="tune")
    except Exception as exc:  # an unexpected failure still says where it happened
        raise WasmBuildError(f"{type(exc).__name__}: {exc}", model=model.name, stage="tune") from exc
    print(f"{model.name}: {args.database}")
    return 0
