"""`wasm-build tune`: tune a model's kernels in wasmtime and write its tuning database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import model_settings_from_args
from ..config.settings import ModelSettings


def add_commands(subparsers) -> None:
    tune = subparsers.add_parser(
        "tune",
        help="tune a model's kernels, measured in wasmtime, into a tuning database",
        description=(
            "Search schedules for every kernel of the model with meta-schedule, timing each candidate "
            "in wasmtime, and merge the best into FILE (created if missing, continued if present). "
            "Builds apply FILE with `compile --tuning-database FILE` or `tuning.database` in pyproject.toml."
        ),
    )
    tune.add_argument("source", help='model: .onnx, .pt2, or "package.module:function"')
    tune.add_argument("--name", help="model name (C identifier); default: the file's stem")
    tune.add_argument("--database", required=True, metavar="FILE", help="tuning database to write, e.g. tuning/kws.json")
    tune.add_argument("--trials", type=int, required=True, help="meta-schedule trials in total, over all kernels")
    tune.add_argument("--time-budget", type=float, metavar="S", help="stop after about this many seconds")
    tune.add_argument("--kernels", dest="tune_kernels", action="append", metavar="PATTERN",
                      help='search only the kernels matching this glob pattern, e.g. "fused_conv2d7_*" (repeatable)')
    tune.add_argument("--input", action="append", default=[], metavar="NAME=SHAPE[:DTYPE]",
                      help="pin an input, e.g. x=1x1x49x40:float32 (repeatable)")
    tune.add_argument("--no-simd", dest="simd", action="store_false", help="tune for wasm without SIMD128")
    tune.add_argument("--relaxed-simd", action="store_true", help="tune for relaxed SIMD")
    tune.add_argument("--winograd-budget", type=float, default=ModelSettings.winograd_budget, metavar="FRACTION",
                      help="as for compile: the kernels tuned must be the kernels built")
    # Keys of the shared model settings that tuning does not use.
    tune.set_defaults(func=_cmd_tune, weights="embed", smoke_test=False, default_schedules=True, rtol=1e-3, atol=1e-4)


def _cmd_tune(args: argparse.Namespace) -> int:
    from ..compiler.target import TargetOptions
    from ..errors import ConfigError, WasmBuildError
    from ..frontends import load_model
    from ..tuning import tune_model

    if args.trials < 1:
        raise ConfigError(f"--trials {args.trials}: tuning needs at least one trial", fix="e.g. --trials 64")
    if args.name is None:
        args.name = Path(args.source).stem.replace("-", "_").replace(".", "_") if ":" not in args.source else "model"
    args.tuning_database = args.database
    model = model_settings_from_args(args)

    def log(message: str) -> None:
        print(f"wasm-build: {model.name}: {message}", file=sys.stderr, flush=True)

    project_dir = Path.cwd()
    try:
        loaded = load_model(model.source, model.inputs, project_dir)
        options = TargetOptions.for_model(model)
        tune_model(loaded.module, options, str(project_dir / args.database), model.tuning, log=log)
    except WasmBuildError as exc:
        raise exc.with_context(model=model.name, stage="tune")
    except Exception as exc:  # an unexpected failure still says where it happened
        raise WasmBuildError(f"{type(exc).__name__}: {exc}", model=model.name, stage="tune") from exc
    print(f"{model.name}: {args.database}")
    return 0
