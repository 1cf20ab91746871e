# WasmBuild.cmake - compile ML models into wasm32 libraries as part of a CMake build.
#
#   include(WasmBuild)                      # or: find_package(WasmBuild CONFIG REQUIRED)
#
#   wasm_build_add_model(kws
#     SOURCE models/kws.onnx
#     INPUTS x=1x1x49x40:float32)
#
#   wasm_build_models_from_pyproject()      # every [[tool.wasm-build.models]]
#
# The compiler runs at build time (`python -m wasm_build compile`), as a custom
# command whose inputs are the model file (and tuning database), so the model is
# rebuilt exactly when it changes. Artifacts land in OUTPUT_DIR/NAME/ (and the
# Rust crates' shared module in OUTPUT_DIR/rust-runtime/) and are installed with
# the project; under scikit-build-core that means into the wheel
# (see docs/cmake.md). Each model also becomes an imported static library NAME::NAME,
# for C programs of the same build that target wasm32-wasi.
#
# scikit-build-core finds this file through wasm-build's `cmake.module` entry
# point (include) and its `cmake.root` entry point (find_package); elsewhere, add
# `python -c "import wasm_build.cmake as m; print(m.__path__[0])"` to
# CMAKE_MODULE_PATH.

include_guard(GLOBAL)

if(CMAKE_VERSION VERSION_LESS 3.20)
  message(FATAL_ERROR "WasmBuild needs CMake 3.20 or newer (found ${CMAKE_VERSION})")
endif()

# -- the Python that runs wasm-build ----------------------------------------------
#
# WASM_BUILD_PYTHON wins; then Python_EXECUTABLE (scikit-build-core sets it to the
# Python running the build, which has wasm-build when it is in build-system.requires);
# then FindPython.
if(DEFINED WASM_BUILD_PYTHON)
  set(_wasm_build_python "${WASM_BUILD_PYTHON}")
elseif(DEFINED Python_EXECUTABLE)
  set(_wasm_build_python "${Python_EXECUTABLE}")
else()
  find_package(Python 3.10 COMPONENTS Interpreter REQUIRED)
  set(_wasm_build_python "${Python_EXECUTABLE}")
endif()

execute_process(
  COMMAND "${_wasm_build_python}" -c
          "import os, wasm_build; print(wasm_build.__version__); print(os.path.dirname(wasm_build.__file__))"
  RESULT_VARIABLE _wasm_build_status
  OUTPUT_VARIABLE _wasm_build_probe
  ERROR_VARIABLE _wasm_build_error
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _wasm_build_status EQUAL 0)
  message(FATAL_ERROR
    "WasmBuild: ${_wasm_build_python} cannot import wasm_build:\n${_wasm_build_error}\n"
    "Fix: add \"wasm-build\" to [build-system] requires in pyproject.toml (scikit-build-core), "
    "`pip install wasm-build` into that Python, or pass -DWASM_BUILD_PYTHON=<python with wasm-build>.")
endif()
string(REPLACE "\n" ";" _wasm_build_probe "${_wasm_build_probe}")
list(GET _wasm_build_probe 0 WasmBuild_VERSION)
list(GET _wasm_build_probe 1 _wasm_build_package_dir)

# Functions may be called from any directory: keep what they need in global properties.
set_property(GLOBAL PROPERTY WASM_BUILD_PYTHON "${_wasm_build_python}")
# A new wasm-build version changes the artifacts: its version file is a dependency of every model.
set_property(GLOBAL PROPERTY WASM_BUILD_STAMP "${_wasm_build_package_dir}/__init__.py")
message(STATUS "WasmBuild: wasm-build ${WasmBuild_VERSION} (${_wasm_build_python})")

set(_WASM_BUILD_FLAGS NO_SIMD RELAXED_SIMD NO_SMOKE_TEST NO_DEFAULT_SCHEDULES NO_CACHE NO_INSTALL)
set(_WASM_BUILD_VALUES
  SOURCE WEIGHTS RTOL ATOL WINOGRAD_BUDGET TUNING_DATABASE TRIALS TIME_BUDGET CACHE_DIR
  OUTPUT_DIR INSTALL_DESTINATION COMPONENT TARGET)
set(_WASM_BUILD_LISTS INPUTS DEPENDS)

# The default install destination of the artifacts, relative to the install prefix.
# Under scikit-build-core the prefix is the wheel's `wheel.install-dir`.
function(_wasm_build_default_destination out)
  if(DEFINED SKBUILD)
    set(${out} "wasm" PARENT_SCOPE)
  else()
    include(GNUInstallDirs)
    # <prefix>/lib/NAME/cmake/NAMEConfig.cmake: find_package(NAME) searches there.
    set(${out} "${CMAKE_INSTALL_LIBDIR}" PARENT_SCOPE)
  endif()
endfunction()

# What the model directories of one OUTPUT_DIR share, installed beside them once per
# destination: rust-runtime/, the Rust module every NAME/rust/ crate includes
# (../../rust-runtime/runtime.rs; wasm-build writes it with each model).
function(_wasm_build_install_shared output_dir destination component)
  set(key "${output_dir}|${destination}|${component}")
  get_property(installed GLOBAL PROPERTY _WASM_BUILD_SHARED_INSTALLS)
  list(FIND installed "${key}" index)  # not IN_LIST: that depends on the caller's policies
  if(NOT index EQUAL -1)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY _WASM_BUILD_SHARED_INSTALLS "${key}")
  install(DIRECTORY "${output_dir}/rust-runtime/" DESTINATION "${destination}/rust-runtime" COMPONENT ${component})
endfunction()

#[=======================================================================[.rst:
wasm_build_add_model(<name> SOURCE <model> [options...])

  <name>                  C identifier: prefix of every symbol and file (libNAME.a, NAME.h, ...)
  SOURCE <model>          .onnx or .pt2 file (relative to the current source dir),
                          or "pkg.module:function" returning a Relax IRModule
  INPUTS <n=SHAPE[:DTYPE]>...  pin open inputs, e.g. x=1x1x49x40:float32
  NO_SIMD | RELAXED_SIMD  SIMD128 is on by default
  WEIGHTS embed|file      embed (default) or write NAME.weights
  NO_SMOKE_TEST           skip running the artifact in wasmtime against native TVM
  NO_DEFAULT_SCHEDULES    leave untuned kernels as TVM generates them
  RTOL <r> ATOL <a>       smoke-test tolerances
  WINOGRAD_BUDGET <f>     weight bytes Winograd 3x3 convs may add, as a fraction of the weights
                          (default 0.5; 0: off)
  TUNING_DATABASE <file>  apply (with TRIALS > 0: write) this tuning database
  TRIALS <n> TIME_BUDGET <s>  tune at build time (slow; usually done once, offline)
  CACHE_DIR <dir> | NO_CACHE  build cache (default: $WASM_BUILD_CACHE_DIR or ~/.cache/wasm-build)
  DEPENDS <file>...       more files whose change rebuilds the model (the Python
                          files of a "pkg.module:function" source)
  OUTPUT_DIR <dir>        artifacts go to <dir>/<name>/ (default: ${CMAKE_CURRENT_BINARY_DIR}/wasm)
  INSTALL_DESTINATION <dir>  install to <dir>/<name>/ (default: wasm under scikit-build-core,
                          ${CMAKE_INSTALL_LIBDIR} otherwise); NO_INSTALL to skip
  COMPONENT <component>   install component
  TARGET <target>         name of the custom target that builds the model (default: wasm_build_<name>)

Defines the imported static library <name>::<name> (archive + include dir) for
wasm32-wasi C programs of the same build. Sets <name>_WASM_DIR in the caller's scope.
#]=======================================================================]
function(wasm_build_add_model name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "${_WASM_BUILD_FLAGS}" "${_WASM_BUILD_VALUES}" "${_WASM_BUILD_LISTS}")
  if(arg_UNPARSED_ARGUMENTS)
    list(JOIN _WASM_BUILD_FLAGS " " _flags)
    list(JOIN _WASM_BUILD_VALUES " " _values)
    message(FATAL_ERROR
      "wasm_build_add_model(${name}): unknown argument(s) ${arg_UNPARSED_ARGUMENTS}.\n"
      "Valid options: ${_flags} ${_values} INPUTS DEPENDS (see cmake/WasmBuild.cmake).")
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "wasm_build_add_model: the name '${name}' is not a C identifier; use e.g. kws or mobilenet_v2")
  endif()
  if(NOT arg_SOURCE)
    message(FATAL_ERROR "wasm_build_add_model(${name}): SOURCE is required, e.g. SOURCE models/${name}.onnx")
  endif()
  if(arg_NO_SIMD AND arg_RELAXED_SIMD)
    message(FATAL_ERROR "wasm_build_add_model(${name}): NO_SIMD and RELAXED_SIMD contradict each other; keep one")
  endif()
  if(NOT arg_WEIGHTS)
    set(arg_WEIGHTS embed)
  elseif(NOT arg_WEIGHTS MATCHES "^(embed|file)$")
    message(FATAL_ERROR "wasm_build_add_model(${name}): WEIGHTS ${arg_WEIGHTS} is not embed or file")
  endif()
  get_property(python GLOBAL PROPERTY WASM_BUILD_PYTHON)
  get_property(stamp GLOBAL PROPERTY WASM_BUILD_STAMP)

  # The model: a file (tracked) or a Python callable (list its files in DEPENDS).
  cmake_path(ABSOLUTE_PATH arg_SOURCE BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" OUTPUT_VARIABLE source_file)
  if(EXISTS "${source_file}" AND NOT IS_DIRECTORY "${source_file}")
    set(source "${source_file}")
    set(depends "${source_file}")
  elseif(arg_SOURCE MATCHES "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
    set(source "${arg_SOURCE}")
    set(depends "")
  else()
    message(FATAL_ERROR
      "wasm_build_add_model(${name}): SOURCE ${arg_SOURCE} is not a file (looked at ${source_file}) "
      "nor a \"package.module:function\"; fix the path (relative paths start at ${CMAKE_CURRENT_SOURCE_DIR})")
  endif()

  if(NOT arg_OUTPUT_DIR)
    set(arg_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/wasm")
  endif()
  cmake_path(ABSOLUTE_PATH arg_OUTPUT_DIR BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}" NORMALIZE)
  set(dir "${arg_OUTPUT_DIR}/${name}")
  set(outputs "${dir}/lib${name}.a" "${dir}/${name}.h" "${dir}/${name}.wasm" "${dir}/${name}.json")
  if(arg_WEIGHTS STREQUAL "file")
    list(APPEND outputs "${dir}/${name}.weights")
  endif()

  # The same options as `wasm-build compile --help`.
  set(command "${python}" -m wasm_build compile "${source}" --name ${name} --out "${arg_OUTPUT_DIR}" --weights ${arg_WEIGHTS})
  foreach(input IN LISTS arg_INPUTS)
    list(APPEND command --input "${input}")
  endforeach()
  foreach(flag NO_SIMD RELAXED_SIMD NO_SMOKE_TEST NO_DEFAULT_SCHEDULES NO_CACHE)
    if(arg_${flag})
      string(TOLOWER "--${flag}" option)
      string(REPLACE "_" "-" option "${option}")
      list(APPEND command ${option})
    endif()
  endforeach()
  foreach(value RTOL ATOL WINOGRAD_BUDGET TRIALS TIME_BUDGET)
    if(DEFINED arg_${value})
      string(TOLOWER "--${value}" option)
      string(REPLACE "_" "-" option "${option}")
      list(APPEND command ${option} ${arg_${value}})
    endif()
  endforeach()
  if(arg_TUNING_DATABASE)
    cmake_path(ABSOLUTE_PATH arg_TUNING_DATABASE BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" OUTPUT_VARIABLE database)
    list(APPEND command --tuning-database "${database}")
    if(EXISTS "${database}")
      list(APPEND depends "${database}")
    endif()
  endif()
  if(arg_CACHE_DIR)
    cmake_path(ABSOLUTE_PATH arg_CACHE_DIR BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}" OUTPUT_VARIABLE cache_dir)
    set(command "${CMAKE_COMMAND}" -E env "WASM_BUILD_CACHE_DIR=${cache_dir}" ${command})
  endif()
  foreach(extra IN LISTS arg_DEPENDS)
    cmake_path(ABSOLUTE_PATH extra BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND depends "${extra}")
  endforeach()

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${command}
    DEPENDS ${depends} "${stamp}"
    # The compiler resolves relative paths inside the model's options against its working directory.
    WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
    COMMENT "wasm-build: compiling model ${name}"
    # Ninja: stream wasm-build's per-stage progress, and compile one model at a time (TVM is memory-hungry).
    USES_TERMINAL
    VERBATIM)
  if(NOT arg_TARGET)
    set(arg_TARGET wasm_build_${name})
  endif()
  add_custom_target(${arg_TARGET} ALL DEPENDS ${outputs})

  # NAME::NAME for wasm32-wasi C programs of this build, shaped like the
  # package config that find_package(NAME) loads from OUT/NAME/cmake/. No
  # whole-archive needed: calling NAME_init() pulls in the archive (see that file).
  if(NOT TARGET ${name}::${name})
    # Imported targets must name an existing include directory at generate time.
    file(MAKE_DIRECTORY "${dir}")
    add_library(${name}::${name} STATIC IMPORTED GLOBAL)
    set_target_properties(${name}::${name} PROPERTIES
      IMPORTED_LOCATION "${dir}/lib${name}.a"
      INTERFACE_INCLUDE_DIRECTORIES "${dir}")
    add_dependencies(${name}::${name} ${arg_TARGET})
  endif()

  if(NOT arg_NO_INSTALL)
    if(NOT DEFINED arg_INSTALL_DESTINATION)
      _wasm_build_default_destination(arg_INSTALL_DESTINATION)
    endif()
    if(NOT arg_COMPONENT)
      set(arg_COMPONENT wasm)
    endif()
    install(DIRECTORY "${dir}/" DESTINATION "${arg_INSTALL_DESTINATION}/${name}" COMPONENT ${arg_COMPONENT})
    _wasm_build_install_shared("${arg_OUTPUT_DIR}" "${arg_INSTALL_DESTINATION}" "${arg_COMPONENT}")
  endif()
  set(${name}_WASM_DIR "${dir}" PARENT_SCOPE)
endfunction()

#[=======================================================================[.rst:
wasm_build_models_from_pyproject([PROJECT_DIR <dir>] [OUTPUT_DIR <dir>]
                                 [INSTALL_DESTINATION <dir>] [NO_INSTALL])

Calls wasm_build_add_model for every [[tool.wasm-build.models]] of
<dir>/pyproject.toml (default: the current source dir), with the options written
there. Artifacts go to OUTPUT_DIR (default: the table's out-dir, relative to the
project). They are installed into the table's wheel-dir, counted from the wheel
root as with setuptools; without wheel-dir, to INSTALL_DESTINATION (default: wasm,
under scikit-build-core's wheel.install-dir). Editing pyproject.toml re-runs CMake.
Sets WASM_BUILD_MODELS to the list of model names.
#]=======================================================================]
function(wasm_build_models_from_pyproject)
  cmake_parse_arguments(PARSE_ARGV 0 arg "NO_INSTALL" "PROJECT_DIR;OUTPUT_DIR;INSTALL_DESTINATION" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
      "wasm_build_models_from_pyproject: unknown argument(s) ${arg_UNPARSED_ARGUMENTS}; "
      "valid: PROJECT_DIR OUTPUT_DIR INSTALL_DESTINATION NO_INSTALL")
  endif()
  if(NOT arg_PROJECT_DIR)
    set(arg_PROJECT_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  endif()
  cmake_path(ABSOLUTE_PATH arg_PROJECT_DIR BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" NORMALIZE)
  set(pyproject "${arg_PROJECT_DIR}/pyproject.toml")
  get_property(python GLOBAL PROPERTY WASM_BUILD_PYTHON)

  # Python reads and validates the table (same rules and messages as `pip wheel`),
  # and writes it out as wasm_build_add_model() calls.
  string(MAKE_C_IDENTIFIER "${arg_PROJECT_DIR}" tag)
  string(MD5 tag "${tag}")
  set(listing "${CMAKE_CURRENT_BINARY_DIR}/wasm-build-models-${tag}.cmake")
  set(command "${python}" -m wasm_build.integrations.cmake project-models "${arg_PROJECT_DIR}" --output "${listing}")
  if(arg_OUTPUT_DIR)
    cmake_path(ABSOLUTE_PATH arg_OUTPUT_DIR BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}" NORMALIZE)
    list(APPEND command --out-dir "${arg_OUTPUT_DIR}")
  endif()
  execute_process(COMMAND ${command} RESULT_VARIABLE status ERROR_VARIABLE error)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "wasm_build_models_from_pyproject: ${pyproject}:\n${error}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${pyproject}")

  # The listing calls _wasm_build_project_model once per model.
  set(_wasm_build_pyproject_models "")
  include("${listing}")
  set(WASM_BUILD_MODELS "${_wasm_build_pyproject_models}" PARENT_SCOPE)
endfunction()

# Called by the generated listing: one model of pyproject.toml. WHEEL_DIR comes
# from wheel-dir (relative to the wheel root); the rest is wasm_build_add_model's.
macro(_wasm_build_project_model name)
  cmake_parse_arguments(_wbp "" "WHEEL_DIR" "" ${ARGN})
  set(_wbp_install "")
  if(arg_NO_INSTALL)
    set(_wbp_install NO_INSTALL)
  elseif(DEFINED arg_INSTALL_DESTINATION)
    set(_wbp_install INSTALL_DESTINATION "${arg_INSTALL_DESTINATION}")
  elseif(DEFINED _wbp_WHEEL_DIR AND DEFINED SKBUILD)
    # scikit-build-core installs into <wheel root>/<wheel.install-dir>; wheel-dir counts from the root.
    if(DEFINED SKBUILD_PLATLIB_DIR)
      set(_wbp_install INSTALL_DESTINATION "${SKBUILD_PLATLIB_DIR}/${_wbp_WHEEL_DIR}")
    else()
      set(_wbp_install INSTALL_DESTINATION "${SKBUILD_PURELIB_DIR}/${_wbp_WHEEL_DIR}")
    endif()
  elseif(DEFINED _wbp_WHEEL_DIR)
    set(_wbp_install INSTALL_DESTINATION "${_wbp_WHEEL_DIR}")
  endif()
  wasm_build_add_model(${name} ${_wbp_UNPARSED_ARGUMENTS} ${_wbp_install})
  list(APPEND _wasm_build_pyproject_models ${name})
  set(${name}_WASM_DIR "${${name}_WASM_DIR}" PARENT_SCOPE)
endmacro()
