#!/usr/bin/env bash
# Installs what wasm-build needs on a fresh Debian 12 machine with Python 3.10+, into the
# active Python environment (a venv when one is active; idempotent; apt-get as root or via sudo).
#
#   bash scripts/setup.sh            the main job: wasm32-wasi C toolchain + wasm-build
#   bash scripts/setup.sh --tests    + Rust for wasm32-wasi, CMake, the test extras, torch (CPU),
#                                      the model libraries of the zoo, onnxruntime-web under Node
#   bash scripts/setup.sh --bench    + the benchmark's peers (tract) and its chart (matplotlib)
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-main}"
case "$mode" in
  main|--main) mode=main ;;
  --tests) mode=tests ;;
  --bench) mode=bench ;;
  *) echo "setup: unknown option '$1'; use --tests or --bench (or nothing for the main job)" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python}"
env_prefix="$("$PYTHON" -c 'import sys; print(sys.prefix)')"
if "$PYTHON" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  echo "setup: installing into the virtual environment $env_prefix"
else
  echo "setup: installing into $env_prefix (no virtual environment is active)"
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# wasm32-wasi C toolchain: clang + wasm-ld + wasi-libc + builtins (ziglang from PyPI is the fallback).
APT_PACKAGES="clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32"
if [ "$mode" != main ]; then
  # Rust for wasm32-wasi (std only: no crates.io) and CMake, for the consumer tests.
  APT_PACKAGES="$APT_PACKAGES rustc cargo libstd-rust-dev-wasm32 cmake make"
fi
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "setup: apt-get install$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# setuptools 70.1+ builds wheels by itself: `pip wheel --no-build-isolation` uses the
# environment's setuptools, and a fresh venv of Python 3.11 comes with 65.5.
"$PYTHON" -m pip install --quiet --upgrade pip "setuptools>=77"

if [ "$mode" = main ]; then
  "$PYTHON" -m pip install --quiet .
  echo "setup: done (main job)"
  exit 0
fi

"$PYTHON" -m pip install --quiet ".[test]"
# torch (CPU) is the optional .pt2 frontend; on these machines pip takes 2.13.0, a CPU build, from a local file.
"$PYTHON" -m pip install --quiet "torch==2.13.0"
if [ -f bench/zoo/requirements.txt ]; then
  # The zoo's model libraries, pinned (architectures with seeded random weights; no downloads).
  "$PYTHON" -m pip install --quiet -r bench/zoo/requirements.txt
fi
if command -v npm >/dev/null 2>&1; then
  (cd bench/node && npm ci --silent --no-audit --no-fund)
else
  echo "setup: npm not found; onnxruntime-web comparisons will be skipped"
fi

if [ "$mode" = bench ]; then
  "$PYTHON" -m pip install --quiet tract matplotlib
fi
echo "setup: done ($mode)"
