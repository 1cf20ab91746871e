# wasi-toolchain.cmake - build C programs for wasm32-wasi with clang.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=<wasm_build>/cmake/wasi-toolchain.cmake
#
# The compiler, in order:
#   1. WASI_SDK_PATH (cache variable or environment): <sdk>/bin/clang with
#      <sdk>/share/wasi-sysroot;
#   2. a system clang (clang-19 ... clang-16, clang) with the Debian/Ubuntu
#      layout: `apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32`,
#      sysroot /usr (headers in /usr/include/wasm32-wasi).
# WASI_SYSROOT overrides the sysroot of 2. Programs get the suffix .wasm and
# run in any WASI runtime (wasmtime, wasmer, node --experimental-wasi-unstable-preview1).

cmake_minimum_required(VERSION 3.20)

set(CMAKE_SYSTEM_NAME WASI)
set(CMAKE_SYSTEM_VERSION 1)
set(CMAKE_SYSTEM_PROCESSOR wasm32)
set(_wasi_triple wasm32-wasi)

# Platform/WASI.cmake next to this file (CMake 3.25 has none of its own).
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")

# try_compile projects re-read this file: hand them the choices made here.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WASI_SDK_PATH WASI_SYSROOT)

if(NOT WASI_SDK_PATH AND DEFINED ENV{WASI_SDK_PATH})
  set(WASI_SDK_PATH "$ENV{WASI_SDK_PATH}")
endif()

if(WASI_SDK_PATH)
  set(_wasi_bin "${WASI_SDK_PATH}/bin")
  set(CMAKE_C_COMPILER "${_wasi_bin}/clang")
  set(CMAKE_CXX_COMPILER "${_wasi_bin}/clang++")
  set(CMAKE_AR "${_wasi_bin}/llvm-ar" CACHE FILEPATH "archiver for wasm32 objects")
  set(CMAKE_RANLIB "${_wasi_bin}/llvm-ranlib" CACHE FILEPATH "ranlib for wasm32 archives")
  set(CMAKE_SYSROOT "${WASI_SDK_PATH}/share/wasi-sysroot")
else()
  foreach(_suffix -19 -18 -17 -16 "")
    find_program(_wasi_clang NAMES clang${_suffix})
    if(_wasi_clang)
      find_program(_wasi_ar NAMES llvm-ar${_suffix} llvm-ar)
      find_program(_wasi_ranlib NAMES llvm-ranlib${_suffix} llvm-ranlib)
      break()
    endif()
  endforeach()
  if(NOT _wasi_clang OR NOT _wasi_ar)
    message(FATAL_ERROR
      "wasi-toolchain.cmake: no clang with llvm-ar found for ${_wasi_triple}. Install "
      "`clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32` (Debian/Ubuntu), "
      "or set WASI_SDK_PATH to a wasi-sdk.")
  endif()
  set(CMAKE_C_COMPILER "${_wasi_clang}")
  string(REPLACE "clang" "clang++" _wasi_clangxx "${_wasi_clang}")
  set(CMAKE_CXX_COMPILER "${_wasi_clangxx}")
  set(CMAKE_AR "${_wasi_ar}" CACHE FILEPATH "archiver for wasm32 objects")
  set(CMAKE_RANLIB "${_wasi_ranlib}" CACHE FILEPATH "ranlib for wasm32 archives")
  if(NOT WASI_SYSROOT)
    set(WASI_SYSROOT /usr)
  endif()
  if(NOT EXISTS "${WASI_SYSROOT}/include/${_wasi_triple}/stdio.h" AND NOT EXISTS "${WASI_SYSROOT}/include/stdio.h")
    message(FATAL_ERROR
      "wasi-toolchain.cmake: no wasi-libc in WASI_SYSROOT=${WASI_SYSROOT}. Install `wasi-libc` "
      "(Debian/Ubuntu) or pass -DWASI_SYSROOT=<dir with include/ and lib/ for ${_wasi_triple}>.")
  endif()
  set(CMAKE_SYSROOT "${WASI_SYSROOT}")
endif()

set(CMAKE_C_COMPILER_TARGET ${_wasi_triple})
set(CMAKE_CXX_COMPILER_TARGET ${_wasi_triple})
set(CMAKE_ASM_COMPILER_TARGET ${_wasi_triple})

# Libraries and headers come from the sysroot; build tools from the host.
# Packages (model configs in OUT/NAME/cmake, wasm-build's own) live anywhere.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
