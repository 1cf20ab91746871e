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
# wasm-build reads and checks each model at configure time and writes its whole table
# to a settings file; the compiler runs at build time (`python -m wasm_build compile
# --settings FILE`), as a custom command whose inputs are that file, the model file
# (and tuning database), so the model is rebuilt exactly when one of them changes.
# Artifacts land in OUTPUT_DIR/NAME/ (and the Rust crates' shared module in
# OUTPUT_DIR/rust-runtime/) and are installed with the project; under
# scikit-build-core that means into the wheel (see docs/cmake.md). Each model also
# becomes an imported static library NAME::NAME, for C programs of the same build
# that target wasm32-wasi.
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

# This module knows no model option: Python (wasm_build.integrations.cmake) parses and
# checks every model at configure time, with the same rules and messages as pyproject.toml,
# writes each model's whole table to a settings file (the build step runs
# `python -m wasm_build compile --settings FILE --out DIR`), and writes a JSON plan that
# the functions below read with string(JSON): what to build, what it depends on, where
# to install. Nothing from a configuration becomes CMake code.
function(_wasm_build_configure what plan)
  get_property(python GLOBAL PROPERTY WASM_BUILD_PYTHON)
  execute_process(
    COMMAND "${python}" -m wasm_build.integrations.cmake ${ARGN} --plan "${plan}"
    RESULT_VARIABLE status
    ERROR_VARIABLE error)
  if(NOT status EQUAL 0)
    # Indented: CMake prints the message as written instead of re-wrapping it.
    string(STRIP "${what}${error}" error)
    string(REPLACE "\n" "\n  " error "  ${error}")
    message(FATAL_ERROR "${error}")
  endif()
  # A new wasm-build may read models differently: configure again when it changes.
  get_property(stamp GLOBAL PROPERTY WASM_BUILD_STAMP)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${stamp}")
endfunction()

# Defines every model of a plan: a custom command and target, NAME::NAME, the install rule.
# Sets _wasm_build_names and NAME_WASM_DIR in the caller's scope.
function(_wasm_build_define_models plan)
  get_property(python GLOBAL PROPERTY WASM_BUILD_PYTHON)
  get_property(stamp GLOBAL PROPERTY WASM_BUILD_STAMP)
  file(READ "${plan}" json)
  string(JSON count LENGTH "${json}" models)
  set(names "")
  if(count GREATER 0)
    math(EXPR last "${count} - 1")
    foreach(i RANGE ${last})
      foreach(key name target settings output-dir directory working-directory
                  install install-destination wheel-dir component)
        string(MAKE_C_IDENTIFIER "${key}" variable)
        string(JSON m_${variable} GET "${json}" models ${i} ${key})
      endforeach()
      # One value per command argument: a path is never part of a CMake list it could split.
      # (Python refused ';' and the like; see _check_path in wasm_build/integrations/cmake.py.)
      set(outputs "")
      string(JSON n LENGTH "${json}" models ${i} outputs)
      math(EXPR n "${n} - 1")
      foreach(j RANGE ${n})
        string(JSON output GET "${json}" models ${i} outputs ${j})
        list(APPEND outputs "${output}")
      endforeach()
      list(GET outputs 0 first_output)

      add_custom_command(
        OUTPUT ${outputs}
        COMMAND "${python}" -m wasm_build compile --settings "${m_settings}" --out "${m_output_dir}"
        # The settings file is rewritten only when the model's settings change.
        DEPENDS "${m_settings}" "${stamp}"
        WORKING_DIRECTORY "${m_working_directory}"
        COMMENT "wasm-build: compiling model ${m_name}"
        # Ninja: stream wasm-build's per-stage progress, and compile one model at a time (TVM is memory-hungry).
        USES_TERMINAL
        VERBATIM)
      # The model file (and its ONNX external data, or the Python files of a callable
      # source), the tuning database, DEPENDS: one at a time, each a single argument.
      string(JSON n LENGTH "${json}" models ${i} depends)
      if(n GREATER 0)
        math(EXPR n "${n} - 1")
        foreach(j RANGE ${n})
          string(JSON dependency GET "${json}" models ${i} depends ${j})
          add_custom_command(OUTPUT "${first_output}" APPEND DEPENDS "${dependency}")
        endforeach()
      endif()
      add_custom_target(${m_target} ALL DEPENDS ${outputs})

      # NAME::NAME for wasm32-wasi C programs of this build, shaped like the
      # package config that find_package(NAME) loads from OUT/NAME/cmake/. No
      # whole-archive needed: calling NAME_init() pulls in the archive (see that file).
      if(NOT TARGET ${m_name}::${m_name})
        # Imported targets must name an existing include directory at generate time.
        file(MAKE_DIRECTORY "${m_directory}")
        add_library(${m_name}::${m_name} STATIC IMPORTED GLOBAL)
        set_target_properties(${m_name}::${m_name} PROPERTIES
          IMPORTED_LOCATION "${m_directory}/lib${m_name}.a"
          INTERFACE_INCLUDE_DIRECTORIES "${m_directory}")
        add_dependencies(${m_name}::${m_name} ${m_target})
      endif()

      if(m_install)
        if(NOT m_install_destination STREQUAL "")
          set(destination "${m_install_destination}")
        elseif(NOT m_wheel_dir STREQUAL "" AND DEFINED SKBUILD)
          # scikit-build-core installs into <wheel root>/<wheel.install-dir>; wheel-dir counts from the root.
          if(DEFINED SKBUILD_PLATLIB_DIR)
            set(destination "${SKBUILD_PLATLIB_DIR}/${m_wheel_dir}")
          else()
            set(destination "${SKBUILD_PURELIB_DIR}/${m_wheel_dir}")
          endif()
        elseif(NOT m_wheel_dir STREQUAL "")
          set(destination "${m_wheel_dir}")
        else()
          _wasm_build_default_destination(destination)
        endif()
        install(DIRECTORY "${m_directory}/" DESTINATION "${destination}/${m_name}" COMPONENT "${m_component}")
        _wasm_build_install_shared("${m_output_dir}" "${destination}" "${m_component}")
      endif()
      set(${m_name}_WASM_DIR "${m_directory}" PARENT_SCOPE)
      list(APPEND names ${m_name})
    endforeach()
  endif()
  set(_wasm_build_names "${names}" PARENT_SCOPE)
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
  TUNING_KERNELS <pattern>...  tune only the kernels matching these glob patterns
  SET <key=value>...      any model key, dotted as in -C config-settings (SET tuning.trials=8)
  CACHE_DIR <dir> | NO_CACHE  build cache (default: $WASM_BUILD_CACHE_DIR or ~/.cache/wasm-build)
  DEPENDS <file>...       more files whose change rebuilds the model
  OUTPUT_DIR <dir>        artifacts go to <dir>/<name>/ (default: ${CMAKE_CURRENT_BINARY_DIR}/wasm)
  INSTALL_DESTINATION <dir>  install to <dir>/<name>/ (default: wasm under scikit-build-core,
                          ${CMAKE_INSTALL_LIBDIR} otherwise); NO_INSTALL to skip
  COMPONENT <component>   install component
  TARGET <target>         name of the custom target that builds the model (default: wasm_build_<name>)

The model keywords are generated from wasm-build's settings (one per key of
[[tool.wasm-build.models]]); `python -m wasm_build.integrations.cmake keywords` lists
them. wasm-build checks the call at configure time: an unknown keyword or a bad value
fails there, with the key and a suggestion.

Defines the imported static library <name>::<name> (archive + include dir) for
wasm32-wasi C programs of the same build. Sets <name>_WASM_DIR in the caller's scope.
#]=======================================================================]
function(wasm_build_add_model name)
  # Every argument reaches Python byte for byte: hex-encoded, no ';', bracket or newline
  # can split or end one.
  set(arguments "")
  math(EXPR last "${ARGC} - 1")
  foreach(i RANGE ${last})
    string(HEX "${ARGV${i}}" hex)
    list(APPEND arguments "x${hex}")
  endforeach()
  string(MD5 tag "${CMAKE_CURRENT_SOURCE_DIR}/${name}")
  set(plan "${CMAKE_CURRENT_BINARY_DIR}/wasm-build/add-model-${tag}.json")
  _wasm_build_configure("" "${plan}"
    add-model --source-dir "${CMAKE_CURRENT_SOURCE_DIR}" --binary-dir "${CMAKE_CURRENT_BINARY_DIR}" ${arguments})
  _wasm_build_define_models("${plan}")
  foreach(model IN LISTS _wasm_build_names)
    set(${model}_WASM_DIR "${${model}_WASM_DIR}" PARENT_SCOPE)
  endforeach()
endfunction()

#[=======================================================================[.rst:
wasm_build_models_from_pyproject([PROJECT_DIR <dir>] [OUTPUT_DIR <dir>]
                                 [INSTALL_DESTINATION <dir>] [NO_INSTALL])

Defines, like wasm_build_add_model, every [[tool.wasm-build.models]] of
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

  # Python reads and validates the table (same rules and messages as `pip wheel`).
  set(command project-models "${arg_PROJECT_DIR}" --binary-dir "${CMAKE_CURRENT_BINARY_DIR}")
  if(arg_OUTPUT_DIR)
    cmake_path(ABSOLUTE_PATH arg_OUTPUT_DIR BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}" NORMALIZE)
    list(APPEND command --out-dir "${arg_OUTPUT_DIR}")
  endif()
  if(arg_NO_INSTALL)
    list(APPEND command --no-install)
  elseif(DEFINED arg_INSTALL_DESTINATION)
    list(APPEND command "--install-destination=${arg_INSTALL_DESTINATION}")
  endif()
  string(MD5 tag "${arg_PROJECT_DIR}")
  set(plan "${CMAKE_CURRENT_BINARY_DIR}/wasm-build/pyproject-${tag}.json")
  _wasm_build_configure("wasm_build_models_from_pyproject: ${pyproject}:\n" "${plan}" ${command})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${pyproject}")

  _wasm_build_define_models("${plan}")
  foreach(model IN LISTS _wasm_build_names)
    set(${model}_WASM_DIR "${${model}_WASM_DIR}" PARENT_SCOPE)
  endforeach()
  set(WASM_BUILD_MODELS "${_wasm_build_names}" PARENT_SCOPE)
endfunction()
