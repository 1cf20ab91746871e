"""Test helpers for wasm_build: small, seeded ONNX models and reference outputs.

The model builders live in :mod:`wasm_build.testing.models`; they need only
``onnx`` and ``numpy`` (plus ``onnxruntime`` for the reference outputs), never
torch or a model hub.
"""
