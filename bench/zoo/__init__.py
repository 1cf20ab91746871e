"""A model zoo the project generates itself, and the command that checks wasm-build on all of it.

Architectures from torchvision, timm and transformers (small configs, seeded random weights, no
downloads) and small hand-written nets, exported to ONNX (TorchScript and dynamo exporters) and
`.pt2`; each is built with wasm-build, run in wasmtime and compared with onnxruntime.
`python bench/zoo/run.py` writes bench/zoo/RESULTS.md; tests/integration/test_zoo.py runs the fast tier.
"""
