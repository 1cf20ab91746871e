"""Thousands of random calls into a model's C API and `WasmModel`, as a careless or hostile host
would make them: never a trap, always a status code and a message (or a Python ValueError)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import wasmtime

from wasm_build import WasmModel, WasmModelError
from wasm_build.wasm import engine

_STATUS = set(range(0, 8))


def _pointers(rng: np.random.Generator, valid: list[int], memory_bytes: int) -> int:
    """NULL, a buffer the host really allocated, or an address outside linear memory.
    (Any other address inside memory is a host bug C cannot detect: writing through it
    corrupts the module's heap.)"""
    choice = rng.integers(0, 5)
    if choice == 0:
        return 0
    if choice == 1:
        return int(rng.choice(valid))
    if choice == 2:
        return memory_bytes - int(rng.integers(0, 8))  # straddles the end
    if choice == 3:
        return int(rng.integers(memory_bytes, 1 << 32))
    return (1 << 32) - 1


def _sizes(rng: np.random.Generator, right: int) -> int:
    return int(rng.choice([0, right, right + 1, max(right - 1, 0), (1 << 32) - 1, int(rng.integers(0, 1 << 32))]))


@pytest.mark.parametrize("fixture", ["kws_build", "mlp_build"])
def test_random_calls_into_the_c_api_never_trap(fixture, request):
    build = request.getfixturevalue(fixture)
    name = build.name
    instance = engine.instantiate(engine.load(build.directory / f"{name}.wasm"))
    manifest_inputs = build.manifest["inputs"]
    manifest_outputs = build.manifest["outputs"]
    malloc = lambda n: instance.call("malloc", n)  # noqa: E731
    weights = (build.directory / f"{name}.weights").read_bytes() if (build.directory / f"{name}.weights").exists() else b""
    # Real buffers: inputs, outputs, an info struct, the weights, pointer arrays.
    inputs = [malloc(t["nbytes"]) for t in manifest_inputs]
    outputs = [malloc(t["nbytes"]) for t in manifest_outputs]
    info = malloc(64)
    weights_at = malloc(len(weights) + 64) if weights else 0
    if weights:
        instance.memory.write(instance.store, weights, weights_at)
    arrays = [malloc(4 * 8) for _ in range(4)]
    valid = [*inputs, *outputs, info, *arrays] + ([weights_at] if weights_at else [])
    rng = np.random.default_rng(20261204)
    calls = 0
    for step in range(3000):
        memory_bytes = instance.memory.data_len(instance.store)
        function = rng.choice(["run", "input_info", "output_info", "init", "last_error", "num_inputs"])
        try:
            if function == "run":
                ins = [_pointers(rng, valid, memory_bytes) if rng.random() < 0.3 else p for p in inputs]
                outs = [_pointers(rng, [*outputs], memory_bytes) if rng.random() < 0.3 else p for p in outputs]
                in_sizes = [_sizes(rng, t["nbytes"]) if rng.random() < 0.3 else t["nbytes"] for t in manifest_inputs]
                out_sizes = [_sizes(rng, t["nbytes"]) if rng.random() < 0.3 else t["nbytes"] for t in manifest_outputs]
                for address, values in zip(arrays, (ins, in_sizes, outs, out_sizes)):
                    instance.memory.write(instance.store, struct.pack(f"<{len(values)}I", *values), address)
                args = [a if rng.random() < 0.9 else _pointers(rng, valid, memory_bytes) for a in arrays]
                status = instance.call(f"{name}_run", *args)
            elif function in ("input_info", "output_info"):
                index = int(rng.choice([0, -1, 1, 2, 1 << 30, int(rng.integers(-(1 << 31), 1 << 31))]))
                status = instance.call(f"{name}_{function}", index, _pointers(rng, [info], memory_bytes))
            elif function == "init":
                if weights:
                    pointer = int(rng.choice([weights_at, weights_at + 1, _pointers(rng, valid, memory_bytes)]))
                    status = instance.call(f"{name}_init_from_buffer", pointer, _sizes(rng, len(weights)))
                else:
                    status = instance.call(f"{name}_init")
            elif function == "last_error":
                engine.c_string(instance, instance.call(f"{name}_last_error"))
                continue
            else:
                assert instance.call(f"{name}_num_inputs") == len(manifest_inputs)
                continue
        except wasmtime.Trap as trap:  # the point of the test
            raise AssertionError(f"step {step}: {function} trapped: {trap}") from None
        assert status in _STATUS, (step, function, status)
        if status != 0:
            assert engine.c_string(instance, instance.call(f"{name}_last_error")), (step, function)
        calls += 1
    assert calls > 1500


@pytest.mark.parametrize("fixture", ["kws_build", "mlp_build"])
def test_random_arrays_into_wasm_model_are_refused_or_run(fixture, request):
    build = request.getfixturevalue(fixture)
    weights = build.directory / f"{build.name}.weights"
    model = WasmModel(build.directory / f"{build.name}.wasm", weights=weights if weights.exists() else None)
    rng = np.random.default_rng(7)
    dtypes = [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint64, np.bool_]
    ran = 0
    for _ in range(500):
        shape = model.inputs[0].shape if rng.random() < 0.5 else tuple(int(d) for d in rng.integers(0, 5, rng.integers(0, 5)))
        dtype = dtypes[rng.integers(0, len(dtypes))]
        with np.errstate(over="ignore", invalid="ignore"):  # huge values overflowing small dtypes are part of the test
            values = (rng.standard_normal(shape) * 10.0 ** rng.integers(0, 45)).astype(dtype) if shape else dtype(1)
        try:
            model.run([values] * len(model.inputs))
            ran += 1
        except ValueError:
            pass
        except WasmModelError as exc:  # a status from the module: allowed, never a trap
            assert exc.status in _STATUS
    assert ran > 0
