"""The `wasm-build` command line (also `python -m wasm_build`)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, WasmBuildError
from ..config.settings import ModelSettings, TuningSettings, from_dict, parse_input_option


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options that mirror `[[tool.wasm-build.models]]` keys."""
    parser.add_argument("--input", action="append", default=[], metavar="NAME=SHAPE[:DTYPE]",
                        help="pin an input, e.g. x=1x1x49x40:float32 (repeatable)")
    parser.add_argument("--no-simd", dest="simd", action="store_false", help="do not use WebAssembly SIMD128")
    parser.add_argument("--relaxed-simd", action="store_true",
                        help="use relaxed SIMD (the module then fails to load on hosts without it)")
    parser.add_argument("--weights", choices=("embed", "file"), default="embed",
                        help="embed weights in the archive (default) or write NAME.weights")
    parser.add_argument("--no-smoke-test", dest="smoke_test", action="store_false",
                        help="skip running the artifact in wasmtime against native references")
    parser.add_argument("--no-default-schedules", dest="default_schedules", action="store_false",
                        help="leave untuned kernels as TVM generates them")
    parser.add_argument("--winograd-budget", type=float, default=ModelSettings.winograd_budget, metavar="FRACTION",
                        help="weight bytes Winograd 3x3 convs may add, as a fraction of the weights (0: off)")
    parser.add_argument("--rtol", type=float, default=1e-3, help="smoke-test relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-4, help="smoke-test absolute tolerance")
    parser.add_argument("--tuning-database", metavar="FILE", help="apply (and with --trials, write) this tuning database")
    parser.add_argument("--trials", type=int, default=0, help="meta-schedule trials measured in wasmtime (0: none)")
    parser.add_argument("--time-budget", type=float, help="stop tuning after this many seconds")
    parser.add_argument("--tune-kernels", action="append", metavar="PATTERN",
                        help="with --trials, search only the kernels matching this glob pattern (repeatable)")


def model_settings_from_args(args: argparse.Namespace) -> ModelSettings:
    inputs = dict(parse_input_option(text) for text in args.input)
    table = {
        "name": args.name,
        "source": args.source,
        "inputs": inputs,
        "simd": args.simd,
        "relaxed-simd": args.relaxed_simd,
        "weights": args.weights,
        "smoke-test": args.smoke_test,
        "default-schedules": args.default_schedules,
        "winograd-budget": args.winograd_budget,
        "rtol": args.rtol,
        "atol": args.atol,
        "tuning": {
            k: v
            for k, v in {
                "trials": args.trials,
                "database": args.tuning_database,
                "time-budget": args.time_budget,
                "kernels": args.tune_kernels,
            }.items()
            if v is not None
        },
    }
    return from_dict(ModelSettings, table, path="wasm-build compile")


def _cmd_compile(args: argparse.Namespace) -> int:
    from ..build import build_model
    from ..config.project import default_cache_dir

    if args.name is None:
        if ":" in args.source and not args.source.endswith((".onnx", ".pt2")):
            raise ConfigError(
                f"a Python source ({args.source}) has no file name to take the model name from",
                fix="pass --name NAME (a C identifier, e.g. --name mlp)",
            )
        args.name = Path(args.source).stem.replace("-", "_").replace(".", "_")
    model = model_settings_from_args(args)
    cache = None if args.no_cache else default_cache_dir()
    result = build_model(model, Path(args.out), project_dir=Path.cwd(), cache_dir=cache, verbose=args.verbose)
    print(f"{result.name}: {result.directory}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    ok = True
    print(f"wasm-build {__version__} (python {sys.version.split()[0]})")
    try:
        import tvm

        print(f"tvm:       {tvm.__version__} ({Path(tvm.__file__).parent})")
    except Exception as exc:  # report, keep going
        ok = False
        print(f"tvm:       MISSING ({exc}); pip install apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post0")
    try:
        import wasmtime

        print(f"wasmtime:  {getattr(wasmtime, '__version__', 'installed')}")
    except Exception as exc:
        ok = False
        print(f"wasmtime:  MISSING ({exc}); pip install wasmtime")
    try:
        from ..artifact.toolchain import find_toolchain

        print(f"toolchain: {find_toolchain().describe()}")
    except WasmBuildError as exc:
        ok = False
        print(f"toolchain: MISSING\n{exc}")
    return 0 if ok else 1


def _cmd_profile(args: argparse.Namespace) -> int:
    from ..wasm.profile import profile_artifact

    profile = profile_artifact(Path(args.directory), runs=args.runs)
    print(f"{profile.name}: fastest of {profile.runs} runs in wasmtime, per kernel")
    print(profile.table())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ..wasm.command import run_program

    return run_program(Path(args.module), args.args)


class _Parser(argparse.ArgumentParser):
    """Reports a mistyped option with the command it belongs to and the closest valid one."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(parsed)
            unknown = next((e for e in extras if e.startswith("-")), extras[0])
            options = [o for action in command._actions for o in action.option_strings]
            close = difflib.get_close_matches(unknown.partition("=")[0], options, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; see {command.prog} --help"
            command.error(f"unrecognized argument {unknown}{hint}")
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(parsed, "command", None), self)
        return self


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasm-build", description=__doc__)
    parser.add_argument("--version", action="version", version=f"wasm-build {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    compile_cmd = sub.add_parser("compile", help="compile one model into OUT/NAME/")
    compile_cmd.add_argument("source", help='model: .onnx, .pt2, or "package.module:function"')
    compile_cmd.add_argument("--name", help="model name (C identifier); default: the file's stem")
    compile_cmd.add_argument("--out", default="build/wasm", help="output directory (default: build/wasm)")
    compile_cmd.add_argument("--no-cache", action="store_true", help="always rebuild")
    compile_cmd.add_argument("-v", "--verbose", action="store_true")
    _add_model_options(compile_cmd)
    compile_cmd.set_defaults(func=_cmd_compile)

    profile = sub.add_parser(
        "profile",
        help="time each kernel of a built model in wasmtime",
        description="Link the model in OUT/NAME/ with a timing driver, run it in wasmtime on random inputs, and "
        "print each kernel's time per run (the fastest of the runs), slowest first, named as `tune --kernels` "
        "takes them.",
    )
    profile.add_argument("directory", help="the model's output directory, e.g. build/wasm/kws")
    profile.add_argument("--runs", type=int, default=20, help="runs to take each call's fastest time from (default 20)")
    profile.set_defaults(func=_cmd_profile)

    run = sub.add_parser(
        "run",
        help="run a WASI command module (a program linked with a model) in wasmtime",
        description="Run MODULE's _start in wasmtime with WASI: arguments after MODULE are its argv, stdin, stdout "
        "and stderr are this process's, and the current directory is visible to it (so NAME_init_from_file "
        "finds NAME.weights). The exit status is the program's.",
    )
    run.add_argument("module", help="a .wasm command module, e.g. main.wasm")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    run.set_defaults(func=_cmd_run)

    doctor = sub.add_parser("doctor", help="show the toolchain, TVM and wasmtime in use")
    doctor.set_defaults(func=_cmd_doctor)

    for extension in _EXTENSIONS:
        extension(sub)
    return parser


def _project_commands(sub) -> None:
    try:
        from .project import add_commands
    except ImportError:
        return
    add_commands(sub)


def _tuning_commands(sub) -> None:
    try:
        from .tune import add_commands
    except ImportError:
        return
    add_commands(sub)


_EXTENSIONS = [_project_commands, _tuning_commands]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WasmBuildError as exc:
        print(f"wasm-build: error: {exc}", file=sys.stderr)
        return 1


__all__ = ["main", "build_parser", "model_settings_from_args", "TuningSettings"]
