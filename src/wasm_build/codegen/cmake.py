"""`OUT/NAME/cmake/NAMEConfig.cmake`: a CMake package, so a C program for wasm32-wasi finds
the model with `find_package(NAME CONFIG)` and links the imported target `NAME::NAME`."""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from . import templating
from .abi import init_functions


def render_cmake_config(name: str, weights_mode: str) -> str:
    """The text of NAMEConfig.cmake: paths are relative to the file, so OUT/NAME can move."""
    init_call = "/".join(f"{function}()" for function in init_functions(name, weights_mode))
    context = {"name": name, "weights_mode": weights_mode, "init_call": init_call, "version": __version__}
    return templating.render("cmake/Config.cmake.j2", context)


def write_cmake_package(inputs, staging_dir: Path) -> None:
    """Extra writer for `package.assemble(inputs, ..., extra_writers=[write_cmake_package])`."""
    directory = Path(staging_dir) / "cmake"
    directory.mkdir(parents=True, exist_ok=True)
    text = render_cmake_config(inputs.name, inputs.weights_mode)
    (directory / f"{inputs.name}Config.cmake").write_text(text, encoding="utf-8", newline="\n")
