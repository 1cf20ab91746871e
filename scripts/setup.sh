#!/usr/bin/env bash
# Installs everything wasm-build, its example project and its tests need, on a
# fresh Debian 12 machine with Python 3.10+ (idempotent; run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# wasm32-wasi C toolchain (clang + wasm-ld + wasi-libc + builtins), Rust for
# wasm32-wasi (std only: no crates.io), CMake for the CMake consumers.
APT_PACKAGES="clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32 rustc cargo libstd-rust-dev-wasm32 cmake make"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "setup: apt-get install$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# wasm-build itself with its test extras. torch (CPU) is the optional .pt2 frontend.
python -m pip install --quiet --upgrade pip
python -m pip install --quiet ".[test]"
# (On these machines pip takes 2.13.0, a CPU build, from a local file.)
python -m pip install --quiet "torch==2.13.0"

# Benchmark peers (bench/run.py): tract, matplotlib for the chart, onnxruntime-web under Node.
python -m pip install --quiet tract matplotlib
if command -v npm >/dev/null 2>&1; then
  (cd bench/node && npm ci --silent --no-audit --no-fund)
else
  echo "setup: npm not found; the onnxruntime-web column of bench/run.py will be skipped"
fi
