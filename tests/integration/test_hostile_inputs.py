"""Hostile and broken input, as an adversarial user or a shared cache would supply it: every
case ends in a clear error or a correct result, never a traceback, a trap, injected code or a
silently wrong artifact. (The C API's own fuzzing is in test_fuzz_api.py, concurrency in
test_concurrency.py.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wasm_build import WasmModel
from wasm_build.errors import ConfigError, WasmBuildError
from wasm_build.testing import models

from tests.support import build, which_or_skip

from tests.support import REPO  # noqa: E402

# Names with every class of character a C, Rust, JSON or CMake file could trip on.
HOSTILE_NAMES = [
    "x */\n#define INJECTED_BY_MODEL 1337\n/*",
    'quote"back\\slash',
    "trigraph ??/ and ??= and */ /* //! ///",
    "emoji \U0001f600 and \u00e9\u4e2d",
    "control \x01\x07\x1b\x7f chars\r\n",
    "`code` <b>html</b> ${cmake} $(shell) %s %n",
    "n" * 300,
]


def _renamed_mlp(names: list[str]) -> onnx.ModelProto:
    """An MLP with two inputs and outputs named `names[0..3]`."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    x0 = helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [1, 8])
    x1 = helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [1, 4])
    y0 = helper.make_tensor_value_info(names[2], TensorProto.FLOAT, [1, 4])
    y1 = helper.make_tensor_value_info(names[3], TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("MatMul", [names[0], "w"], ["mm"], name=names[4 % len(names)]),
        helper.make_node("Add", ["mm", names[1]], [names[2]]),
        helper.make_node("Relu", [names[2]], [names[3]]),
    ]
    graph = helper.make_graph(nodes, "hostile \"graph\" */", [x0, x1], [y0, y1], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="*/ producer")
    model.doc_string = "doc */ #define X"
    return model


def test_hostile_tensor_names_stay_data_in_every_artifact(tmp_path):
    clang = which_or_skip("clang-19")
    names = HOSTILE_NAMES[:4]
    model = _renamed_mlp(names)
    result = build(model, "hostile", tmp_path / "out")  # smoke test on: it runs correctly
    directory = result.directory

    # The names round-trip exactly through the C API.
    wasm = WasmModel(directory / "hostile.wasm")
    assert [t.name for t in wasm.inputs] == names[:2]
    assert [t.name for t in wasm.outputs] == names[2:4]
    # The manifest is valid JSON with the names as data.
    manifest = json.loads((directory / "hostile.json").read_text())
    assert [t["name"] for t in manifest["inputs"]] == names[:2]

    # A C program including the header compiles without warnings and sees no injected macro.
    program = tmp_path / "main.c"
    program.write_text(
        '#include <stdio.h>\n#include <string.h>\n#include "hostile.h"\n'
        "#ifdef INJECTED_BY_MODEL\n#error a tensor name injected a macro\n#endif\n"
        "int main(void) {\n  hostile_tensor_info info;\n"
        "  if (hostile_init() != HOSTILE_OK || hostile_input_info(0, &info) != HOSTILE_OK) return 2;\n"
        "  fputs(info.name, stdout);\n  return 0;\n}\n"
    )
    proc = subprocess.run(
        [clang, "--target=wasm32-wasi", "--sysroot=/usr", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wcomment",
         "-Wtrigraphs", str(program), f"-I{directory}", str(directory / "libhostile.a"), "-o", str(tmp_path / "main.wasm")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # The text may appear escaped inside a comment, never as a line of its own.
    for path in [directory / "hostile.h", *directory.rglob("*.rs"), *directory.rglob("*.cmake")]:
        assert not re.search(r"^\s*#\s*define\s+INJECTED_BY_MODEL", path.read_text(), re.MULTILINE), path


@pytest.mark.parametrize("name", HOSTILE_NAMES[4:])
def test_more_hostile_names_build_and_round_trip(tmp_path, name):
    names = [name, name + "1", name + "2", name + "3"]
    result = build(_renamed_mlp(names), "hostile", tmp_path / "out")
    wasm = WasmModel(result.directory / "hostile.wasm")
    assert [t.name for t in wasm.inputs + wasm.outputs] == names


def _single_op(op: str, shape: list[int], **model_kwargs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, **model_kwargs)


@pytest.mark.parametrize(
    "model, message",
    [
        (_single_op("Relu", [1, 4], opset_imports=[helper.make_opsetid("", 999)]), "uses ONNX opset 999"),
        (_single_op("Relu", [1, 4], opset_imports=[]), "declares no opset for ONNX's default domain"),
        (_single_op("Relu", [1, 4], opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]), None),
        (_single_op("Relu", [1, 100000, 100000], opset_imports=[helper.make_opsetid("", 17)]), "a wasm32 module has 4 GiB at most"),
        (_single_op("Relu", [0, 4], opset_imports=[helper.make_opsetid("", 17)]), "empty"),
    ],
    ids=["future-opset", "no-opset", "unused-custom-domain", "absurd-shape", "zero-dimension"],
)
def test_bad_opsets_and_shapes_get_clear_errors_fast(tmp_path, model, message):
    start = time.monotonic()
    if message is None:  # declaring a custom domain is fine as long as no node uses it
        build(model, "m", tmp_path / "out")
        return
    with pytest.raises(WasmBuildError) as info:
        build(model, "m", tmp_path / "out")
    assert message in str(info.value) and info.value.fix
    assert len(str(info.value).splitlines()) <= 3
    assert time.monotonic() - start < 20


def test_custom_domain_operator_with_a_standard_name_is_refused(tmp_path):
    model = _single_op("Relu", [1, 4], opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.graph.node[0].domain = "com.example"
    with pytest.raises(WasmBuildError, match="com.example:Relu"):
        build(model, "m", tmp_path / "out")


def _external_data_model(directory: Path, scale: float) -> Path:
    model = models.mlp(seed=5, sizes=(32, 64, 8))
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor) * scale
        tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    return path


def test_external_data_is_read_next_to_the_model_and_keys_the_cache(tmp_path, monkeypatch):
    path = _external_data_model(tmp_path / "model", 1.0)
    assert (tmp_path / "model" / "ext.data").is_file()
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)  # the build runs from another directory than the model's
    first = build(str(path), "ext", tmp_path / "out", cache_dir=cache)
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    (before,) = WasmModel(first.directory / "ext.wasm").run([x])
    # New weights in the external data file only: a rebuild, not "up to date".
    _external_data_model(tmp_path / "model", 2.0)
    second = build(str(path), "ext", tmp_path / "out", cache_dir=cache)
    assert not second.cached
    (after,) = WasmModel(second.directory / "ext.wasm").run([x])
    assert not np.allclose(before, after)
    # A missing external data file is named.
    (tmp_path / "model" / "ext.data").unlink()
    with pytest.raises(WasmBuildError, match="ext.data', which is missing"):
        build(str(path), "ext2", tmp_path / "out", cache_dir=cache)


@pytest.mark.parametrize("tamper", ["stray-file", "listing-entry-dropped", "garbage-archive", "listing-missing"])
def test_a_tampered_cache_entry_is_rebuilt_never_reused(tmp_path, tamper):
    source = models.save(models.mlp(seed=9), tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    first = build(str(source), "m", tmp_path / "out", cache_dir=cache)
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    listing = entry / "cache-entry.json"
    if tamper == "stray-file":
        (entry / "evil.sh").write_text("rm -rf /\n")
    elif tamper == "listing-entry-dropped":
        data = json.loads(listing.read_text())
        data["files"].pop("libm.a")
        listing.write_text(json.dumps(data))
        (entry / "libm.a").write_bytes(b"garbage")
    elif tamper == "garbage-archive":
        (entry / "libm.a").write_bytes(b"!<arch>\ngarbage")
    else:
        listing.unlink()
    again = build(str(source), "m", tmp_path / "out2", cache_dir=cache)
    assert not again.cached
    assert not (again.directory / "evil.sh").exists()
    assert (again.directory / "libm.a").read_bytes() == (first.directory / "libm.a").read_bytes()


@pytest.mark.parametrize("how", ["cli", "config-setting", "pyproject"])
def test_nan_tolerances_are_refused(tmp_path, how):
    from wasm_build.config.project import load_project

    source = models.save(models.mlp(), tmp_path / "m.onnx")
    if how == "cli":
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.run([sys.executable, "-m", "wasm_build", "compile", str(source), "--rtol", "nan"],
                              cwd=tmp_path, capture_output=True, text=True, env=env)
        assert proc.returncode == 1 and "rtol = nan is not a finite number" in proc.stderr
        return
    (tmp_path / "pyproject.toml").write_text(
        '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "m"\nsource = "m.onnx"\n'
        + ("atol = nan\n" if how == "pyproject" else "")
    )
    settings = {"wasm-build.models.m.rtol": "inf"} if how == "config-setting" else None
    with pytest.raises(ConfigError, match="is not a finite number"):
        load_project(tmp_path, settings)


@pytest.mark.parametrize("wheel_dir", ["../../outside", "/tmp/absolute", "pkg/../../up", "C:\\\\windows"])
def test_wheel_dir_may_not_leave_the_wheel(tmp_path, wheel_dir):
    from wasm_build.config.project import load_project

    models.save(models.mlp(), tmp_path / "m.onnx")
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.wasm-build]\nwheel-dir = "{wheel_dir}"\n[[tool.wasm-build.models]]\nname = "m"\nsource = "m.onnx"\n'
    )
    with pytest.raises(ConfigError, match="leaves the wheel"):
        load_project(tmp_path)


def test_out_dir_that_is_a_file_or_read_only_is_an_error(tmp_path):
    from wasm_build.build import build_model
    from wasm_build.config import ModelSettings, from_dict

    source = models.save(models.mlp(), tmp_path / "m.onnx")
    model = from_dict(ModelSettings, {"name": "m", "source": str(source)}, "test")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(WasmBuildError, match="is a file"):
        build_model(model, tmp_path / "file", project_dir=tmp_path, log=lambda _: None)
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(WasmBuildError, match="cannot write to the output directory"):
            build_model(model, read_only, project_dir=tmp_path, log=lambda _: None)
    finally:
        read_only.chmod(0o755)


def test_a_read_only_cache_warns_and_builds(tmp_path, monkeypatch):
    from wasm_build.artifact import cache as cache_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.BuildCache, "publish", refuse)
    lines: list[str] = []
    source = models.save(models.mlp(), tmp_path / "m.onnx")
    result = build(str(source), "m", tmp_path / "out", cache_dir=tmp_path / "cache", log=lines.append)
    assert (result.directory / "m.wasm").is_file()
    assert any("could not add the build to the cache" in line for line in lines)
    shutil.rmtree(tmp_path / "out")


@pytest.mark.parametrize("ops", [["Relu"], ["Gemm", "Relu"], ["Conv", "Relu"], ["Clip"]])
def test_nan_and_infinities_come_out_as_onnxruntime_returns_them(tmp_path, ops):
    """TVM's ReLU (max(x, 0)) returned 0 for NaN; onnxruntime returns NaN."""
    rng = np.random.default_rng(4)
    if ops[0] == "Conv":
        shape, w = [1, 2, 6, 6], numpy_helper.from_array(rng.standard_normal((3, 2, 1, 1)).astype(np.float32), "w")
        out_shape = [1, 3, 6, 6]
        nodes = [helper.make_node("Conv", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    elif ops[0] == "Gemm":
        shape, w = [2, 8], numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
        out_shape = [2, 4]
        nodes = [helper.make_node("Gemm", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    elif ops[0] == "Clip":
        shape, out_shape, w = [4, 8], [4, 8], None
        lo, hi = numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")
        nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])]
    else:
        shape, out_shape, w = [4, 8], [4, 8], None
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    initializers = [w] if w is not None else ([lo, hi] if ops[0] == "Clip" else [])
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = build(model, "nan", tmp_path / "out")  # the smoke test runs special values too
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[[0, 3, 5]] = [np.nan, np.inf, -np.inf]
    (got,) = WasmModel(result.directory / "nan.wasm").run([x])
    (want,) = models.reference_outputs(model, {"x": x})
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-4, atol=1e-5)
