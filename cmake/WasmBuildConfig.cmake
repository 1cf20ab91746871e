# WasmBuildConfig.cmake - find_package(WasmBuild CONFIG) loads wasm-build's CMake functions.
#
# scikit-build-core sets WasmBuild_ROOT to this directory (wasm-build's
# `cmake.root` entry point); elsewhere pass -DWasmBuild_DIR=<this directory>.
# Provides wasm_build_add_model() and wasm_build_models_from_pyproject(); see WasmBuild.cmake.
include("${CMAKE_CURRENT_LIST_DIR}/WasmBuild.cmake")
set(WasmBuild_FOUND TRUE)
