"""`wasm-build build` (every model a pyproject declares) and `wasm-build schema`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config.project import CONFIG_PREFIX, load_project
from ..config.schema import dumps, generate
from ..errors import ConfigError


def _config_settings(pairs: list[str]) -> dict[str, str]:
    """`-C KEY=VALUE` (KEY with or without the `wasm-build.` prefix) as PEP 517 config-settings."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"-C {pair!r} is not KEY=VALUE", fix="write e.g. -C models.kws.simd=false")
        if not key.startswith(CONFIG_PREFIX):
            key = CONFIG_PREFIX + key
        settings[key] = value
    return settings


def _cmd_build(args: argparse.Namespace) -> int:
    from ..build import build_project  # the compiler: TVM takes seconds to import

    project_dir = Path(args.project)
    project = load_project(project_dir, _config_settings(args.config_setting))
    if project is None:
        raise ConfigError(
            f"{project_dir / 'pyproject.toml'} has no [tool.wasm-build] table",
            fix="declare models under [[tool.wasm-build.models]] (see docs/build-integration.md)",
        )
    results = build_project(project, verbose=args.verbose)
    for result in results:
        print(f"{result.name}: {result.directory}{' (cached)' if result.cached else ''}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(dumps(generate()))
    return 0


def add_parser(commands) -> None:
    build = commands.add_parser("build", help="build every model declared in pyproject.toml [tool.wasm-build]")
    build.add_argument("--project", default=".", metavar="DIR", help="directory of pyproject.toml (default: .)")
    build.add_argument(
        "-C",
        "--config-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting for this build, e.g. -C models.kws.simd=false or -C out-dir=dist/wasm (repeatable)",
    )
    build.add_argument("-v", "--verbose", action="store_true")
    build.set_defaults(func=_cmd_build)

    schema = commands.add_parser("schema", help="print the JSON schema of [tool.wasm-build]")
    schema.set_defaults(func=_cmd_schema)
