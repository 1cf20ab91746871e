"""PEP 517 backend: `setuptools.build_meta` that also hears `-C wasm-build.*`.

setuptools only turns a few config-settings into command options and drops
the rest, so `pip wheel . -C wasm-build.models.kws.simd=false` would never
reach `build_wasm_model`. Use this backend to make it:

    [build-system]
    requires = ["setuptools>=68", "wasm-build"]
    build-backend = "wasm_build.build_meta"

Every hook forwards to setuptools; the `wasm-build.*` entries are held here for
the duration of the call (setuptools runs the build in this process) and read
by `wasm_build.setuptools_ext`. With plain `setuptools.build_meta` use the
`WASM_BUILD_*` environment variables instead.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from setuptools import build_meta as _setuptools

from .config.project import CONFIG_PREFIX

_active: dict[str, Any] = {}


def current_config_settings() -> dict[str, Any]:
    """The `wasm-build.*` config-settings of the hook running now."""
    return dict(_active)


@contextmanager
def _wasm_build_settings(config_settings: dict[str, Any] | None) -> Iterator[dict[str, Any] | None]:
    """Hold our keys for the call; hand setuptools only its own."""
    if not config_settings:
        yield config_settings
        return
    ours = {k: v for k, v in config_settings.items() if k.startswith(CONFIG_PREFIX)}
    rest = {k: v for k, v in config_settings.items() if not k.startswith(CONFIG_PREFIX)}
    previous = dict(_active)
    _active.clear()
    _active.update(ours)
    try:
        yield rest
    finally:
        _active.clear()
        _active.update(previous)


def get_requires_for_build_wheel(config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.get_requires_for_build_wheel(rest)


def get_requires_for_build_sdist(config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.get_requires_for_build_sdist(rest)


def get_requires_for_build_editable(config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.get_requires_for_build_editable(rest)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, rest)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.prepare_metadata_for_build_editable(metadata_directory, rest)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.build_wheel(wheel_directory, rest, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.build_editable(wheel_directory, rest, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    with _wasm_build_settings(config_settings) as rest:
        return _setuptools.build_sdist(sdist_directory, rest)
