"""`wasm-build build` (every model a pyproject declares) and `wasm-build schema`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..config.project import CONFIG_PREFIX, load_project


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


def build_project(project_dir: Path, config_settings: dict[str, str], verbose: bool = False) -> list:
    """Build every declared model into the project's out-dir; returns the `BuildResult`s."""
    from ..build import build_model

    project = load_project(project_dir, config_settings)
    if project is None:
        raise ConfigError(
            f"{project_dir / 'pyproject.toml'} has no [tool.wasm-build] table",
            fix="declare models under [[tool.wasm-build.models]] (see docs/build-integration.md)",
        )
    return [
        build_model(
            model,
            project.out_dir,
            project_dir=project.directory,
            cache_dir=project.cache_dir,
            verbose=verbose,
        )
        for model in project.settings.models
    ]


def _cmd_build(args: argparse.Namespace) -> int:
    results = build_project(Path(args.project), _config_settings(args.config_setting), args.verbose)
    for result in results:
        print(f"{result.name}: {result.directory}{' (cached)' if result.cached else ''}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from ..config.schema import dumps, generate

    sys.stdout.write(dumps(generate()))
    return 0


def add_commands(subparsers) -> None:
    build = subparsers.add_parser("build", help="build every model declared in pyproject.toml [tool.wasm-build]")
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

    schema = subparsers.add_parser("schema", help="print the JSON schema of [tool.wasm-build]")
    schema.set_defaults(func=_cmd_schema)
