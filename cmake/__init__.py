"""CMake files of wasm-build, installed as the package `wasm_build.cmake`.

They live at the top of the repository (`cmake/`) and are mapped into the
package by `[tool.setuptools.package-dir]`, so that scikit-build-core's
`cmake.module` / `cmake.root` entry points can find them with
`importlib.resources.files("wasm_build.cmake")`, in wheels and editable
installs alike. This file exists only so that editable installs resolve the
package: it has no Python API.
"""
