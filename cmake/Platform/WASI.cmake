# Platform/WASI.cmake - what CMake 3.25 does not know about wasm32-wasi.
#
# Loaded through CMAKE_MODULE_PATH when CMAKE_SYSTEM_NAME is WASI (see
# wasi-toolchain.cmake). Newer CMake releases may ship their own; this one only
# sets what a static wasm32-wasi program needs.

set(WASI 1)
set(UNIX 1)

# wasm32-wasi has no dynamic linking: every library is a static archive.
set_property(GLOBAL PROPERTY TARGET_SUPPORTS_SHARED_LIBS FALSE)
set(CMAKE_STATIC_LIBRARY_PREFIX "lib")
set(CMAKE_STATIC_LIBRARY_SUFFIX ".a")
set(CMAKE_EXECUTABLE_SUFFIX ".wasm")
set(CMAKE_FIND_LIBRARY_PREFIXES "lib")
set(CMAKE_FIND_LIBRARY_SUFFIXES ".a")
