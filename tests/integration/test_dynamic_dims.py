"""Bounded dynamic dimensions (issue 21): one artifact for every length up to a bound.

Models with a symbolic length, from ONNX (`dim_param`) and from `torch.export` with a `Dim`,
are built once per module and run at many lengths from Python (`WasmModel`), from a C
program and from Rust, against onnxruntime and PyTorch. Shapes outside the bounds, and
inputs that disagree on a dimension, are an error code with a message, never a trap.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from wasm_build.compiler.row_chunks import row_axes
from wasm_build.config.settings import DimSpec
from wasm_build.errors import ConfigError, WasmBuildError
from wasm_build.testing import models
from wasm_build.testing.torchvision import import_torchvision
from wasm_build.wasm.host import WasmModel, WasmModelError

from tests.support.c import WASI, compile_ok
from tests.support.export import export_onnx, last_hidden_state
from tests.support.rust import dependency, write_crate
from tests.support import build
from tests.support.wasm import run_command

ERROR_SHAPE = 8


# -- builds, once per module ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory):
    """The ONNX encoder (`dim_param` seq) bounded to 1..48; its smoke test runs 1, 25 and 48."""
    out = tmp_path_factory.mktemp("encoder-onnx")
    return build(models.sequence_encoder(), "enc", out, dims={"seq": {"min": 1, "max": 48}})


@pytest.fixture(scope="module")
def bert(tmp_path_factory, torch_models):
    """The BERT-style encoder: `input_ids` and `attention_mask` [1, seq], seq in 1..64, the bounds
    of its export's Dim."""
    out = tmp_path_factory.mktemp("bert")
    source = torch_models.export_encoder(out / "bert.pt2", max_len=64)
    # torch.export names the symbol (s0, s53, ...): the build names it "seq" through one input.
    return build(source, "bert", out, inputs={"input_ids": {"shape": [1, "seq"]}}, smoke_test=False)


# -- Python: WasmModel ---------------------------------------------------------------------------


def test_onnx_dim_param_runs_every_length_against_onnxruntime(encoder_onnx):
    manifest = encoder_onnx.manifest
    assert manifest["dims"] == [{"name": "seq", "min": 1, "max": 48}]
    assert manifest["inputs"][0]["shape"] == [1, "seq", 32] and manifest["inputs"][0]["max_shape"] == [1, 48, 32]
    assert manifest["outputs"][0]["shape"] == [1, "seq", 32]
    assert "enc_run_dims" in manifest["exports"]
    onnx_model = models.sequence_encoder()
    model = WasmModel(encoder_onnx.directory / "enc.wasm")
    assert model.dims[0].name == "seq" and (model.dims[0].min, model.dims[0].max) == (1, 48)
    assert model.inputs[0].shape == (1, "seq", 32) and model.outputs[0].shape == (1, None, 32)
    # Lengths across the row chunks (4 rows): whole chunks, one row past them, the bounds.
    for seq in (1, 2, 3, 4, 5, 16, 17, 31, 47, 48, 7, 1):
        inputs = models.random_inputs(onnx_model, seed=seq, dims={"seq": seq})
        (want,) = models.reference_outputs(onnx_model, inputs)
        (got,) = model.run(inputs)
        assert got.shape == (1, seq, 32)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"seq={seq}")


def test_out_of_bound_shapes_are_an_error_code(encoder_onnx):
    model = WasmModel(encoder_onnx.directory / "enc.wasm")
    for seq in (0, 49, 1000):
        with pytest.raises(WasmModelError) as info:
            model.run([np.zeros((1, seq, 32), np.float32)])
        assert info.value.status == ERROR_SHAPE and "seq" in info.value.message and "1..48" in info.value.message
    with pytest.raises(ValueError, match=r"must have shape \(1, 'seq', 32\)"):  # a static dimension, in Python
        model.run([np.zeros((1, 4, 31), np.float32)])
    with pytest.raises(WasmModelError) as info:  # NAME_run runs at the upper bounds: a size error
        model.run_bytes([b"\0" * 4])
    assert info.value.status == 4 and "enc_run" in info.value.function
    # The model still runs afterwards, at the length of the last good run and at others.
    (got,) = model.run([np.ones((1, 3, 32), np.float32)])
    assert got.shape == (1, 3, 32) and np.isfinite(got).all()


def test_bert_style_encoder_matches_pytorch_at_many_lengths(bert, torch_models):
    import torch

    program = torch.export.load(str(bert.directory.parent / "bert.pt2"))
    model = WasmModel(bert.directory / "bert.wasm")
    assert [d.name for d in model.dims] == ["seq"]
    rng = np.random.default_rng(0)
    for seq in (1, 2, 5, 8, 13, 16, 33, 64, 3):
        ids = rng.integers(0, 100, (1, seq)).astype(np.int64)
        mask = np.ones((1, seq), np.int64)
        mask[0, seq // 2 + 1 :] = 0  # padding tokens at the end
        hidden, logits = model.run({"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            want_hidden, want_logits = program.module()(torch.from_numpy(ids), torch.from_numpy(mask))
        assert hidden.shape == (1, seq, 32) and logits.shape == (1, 3)
        np.testing.assert_allclose(hidden, want_hidden.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"seq={seq}")
        np.testing.assert_allclose(logits, want_logits.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"seq={seq}")


def test_inputs_that_disagree_on_a_dimension_are_an_error_code(bert):
    model = WasmModel(bert.directory / "bert.wasm")
    with pytest.raises(WasmModelError) as info:
        model.run({"input_ids": np.zeros((1, 5), np.int64), "attention_mask": np.ones((1, 6), np.int64)})
    assert info.value.status == ERROR_SHAPE
    assert "attention_mask" in info.value.message and "input_ids" in info.value.message and "is 6" in info.value.message
    with pytest.raises(WasmModelError) as info:
        model.run({"input_ids": np.zeros((1, 65), np.int64), "attention_mask": np.ones((1, 65), np.int64)})
    assert info.value.status == ERROR_SHAPE and "1..64" in info.value.message


def test_causal_decoder_and_speech_model_match_pytorch(tmp_path, torch_models):
    import torch

    decoder = build(torch_models.export_decoder(tmp_path / "dec.pt2"), "dec", tmp_path, inputs={"ids": {"shape": [1, "seq"]}})
    speech = build(
        torch_models.export_speech(tmp_path / "speech.pt2"), "speech", tmp_path, inputs={"x": {"shape": [1, 8, "frames"]}}
    )
    # The speech model's output length is computed from the frames, and reported.
    assert speech.manifest["outputs"][0]["shape"] == [1, "(frames - 1) // 2 - 3", 4]
    assert speech.manifest["dims"] == [{"name": "frames", "min": 16, "max": 200}]  # the export's Dim bounds
    rng = np.random.default_rng(1)
    dec_program = torch.export.load(str(tmp_path / "dec.pt2")).module()
    dec = WasmModel(decoder.directory / "dec.wasm")
    for seq in (1, 2, 9, 17, 64):
        ids = rng.integers(0, 50, (1, seq)).astype(np.int64)
        (got,) = dec.run([ids])
        with torch.no_grad():
            want = dec_program(torch.from_numpy(ids)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"seq={seq}")
    speech_program = torch.export.load(str(tmp_path / "speech.pt2")).module()
    sp = WasmModel(speech.directory / "speech.wasm")
    for frames in (16, 17, 40, 99, 200):
        x = rng.standard_normal((1, 8, frames)).astype(np.float32)
        (got,) = sp.run([x])
        assert got.shape == (1, (frames - 1) // 2 - 3, 4)
        with torch.no_grad():
            want = speech_program(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"frames={frames}")
    with pytest.raises(WasmModelError) as info:
        sp.run([np.zeros((1, 8, 15), np.float32)])
    assert info.value.status == ERROR_SHAPE and "frames = 15" in info.value.message


# -- declaring dimensions ----------------------------------------------------------------------


def test_unbounded_dimension_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        build(models.sequence_encoder(), "enc", tmp_path)
    message = str(info.value)
    assert "input 'tokens' dimension 1 is dynamic ('seq') and unbounded" in message
    assert "--dim seq=1..N" in message and "dims = { seq = { min = 1, max = N } }" in message
    with pytest.raises(ConfigError, match="did you mean 'seq'"):
        build(models.sequence_encoder(), "enc", tmp_path, dims={"sq": {"max": 8}})
    with pytest.raises(ConfigError, match="not a range"):
        build(models.sequence_encoder(), "enc", tmp_path, dims={"seq": {"min": 9, "max": 8}})


def test_torch_dim_bounds_are_used_and_may_only_narrow(tmp_path, torch_models):
    source = torch_models.export_speech(tmp_path / "speech.pt2")
    with pytest.raises(ConfigError, match="goes beyond the bounds the model was exported with"):
        build(source, "speech", tmp_path, inputs={"x": {"shape": [1, 8, "frames"]}}, dims={"frames": {"min": 4, "max": 64}})
    narrowed = build(
        source, "speech", tmp_path, inputs={"x": {"shape": [1, 8, "frames"]}}, dims={"frames": {"min": 20, "max": 64}},
        smoke_test=False,
    )
    assert narrowed.manifest["dims"] == [{"name": "frames", "min": 20, "max": 64}]
    # Pinning the length instead gives a model of static shapes.
    pinned = build(source, "pinned", tmp_path, inputs={"x": {"shape": [1, 8, 32]}}, smoke_test=False)
    assert "dims" not in pinned.manifest and "pinned_run_dims" not in pinned.manifest["exports"]


def test_dims_through_the_cli_pyproject_config_settings_and_environment(tmp_path):
    from wasm_build.cli import build_parser
    from wasm_build.cli import compile as compile_command
    from wasm_build.config.project import load_project

    args = build_parser().parse_args(
        ["compile", "m.onnx", "--name", "m", "--input", "input_ids=1xseq:int64", "--dim", "seq=1..128"]
    )
    model = compile_command.model_of(args)[0]
    assert model.inputs["input_ids"].shape == (1, "seq") and model.dims == {"seq": DimSpec(min=1, max=128)}
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent('''
        [tool.wasm-build]
        [[tool.wasm-build.models]]
        name = "m"
        source = "m.onnx"
        inputs = { input_ids = { shape = [1, "seq"], dtype = "int64" } }
        dims = { seq = { min = 1, max = 128 } }
    '''))
    loaded = load_project(tmp_path, environ={}).settings.models[0]
    assert loaded.inputs == model.inputs and loaded.dims == model.dims
    narrowed = load_project(tmp_path, {"wasm-build.models.m.dims.seq.max": "64"}, environ={}).settings.models[0]
    assert narrowed.dims == {"seq": DimSpec(min=1, max=64)}
    from_env = load_project(tmp_path, environ={"WASM_BUILD_DIMS": "{ seq = { min = 2, max = 32 } }"}).settings.models[0]
    assert from_env.dims == {"seq": DimSpec(min=2, max=32)}
    with pytest.raises(ConfigError, match="is not NAME=MIN..MAX"):
        compile_command.model_of(build_parser().parse_args(["compile", "m.onnx", "--name", "m", "--dim", "seq=128"]))


def test_fixed_shape_models_keep_their_api(session_builds):
    result = session_builds("dims-mlp", models.mlp, "mlp")
    header = (result.directory / "mlp.h").read_text()
    assert "run_dims" not in header and "ERROR_SHAPE" not in header and "MLP_INPUT0_BYTES 256u" in header
    assert "dims" not in result.manifest and not any("dim" in e for e in result.manifest["exports"])


# -- row chunks ------------------------------------------------------------------------------------


def test_row_wise_kernels_are_chunked_and_attention_is_not():
    import tvm

    from wasm_build.compiler.pipeline import legalize_passes, optimize_passes, plan_for_bounds
    from wasm_build.compiler.target import TargetOptions
    from wasm_build.frontends.onnx import load_onnx

    path = models.save(models.sequence_encoder(), Path(__import__("tempfile").mkdtemp()) / "enc.onnx")
    loaded = load_onnx(path, {}, {"seq": DimSpec(max=32)})
    options = TargetOptions()
    with options.tvm_target(), tvm.transform.PassContext(opt_level=3):
        # Without the row chunk pass (the last legalize pass), to look at the symbolic kernels.
        module = tvm.transform.Sequential([*optimize_passes(), *legalize_passes(options.tvm_target(), options)[:-1]])(
            plan_for_bounds(loaded.module)
        )
    chunked, symbolic = set(), set()
    for gvar, func in module.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and any(
            isinstance(d, tvm.tirx.Var) for p in func.params if isinstance(p.ty, tvm.tirx.BufferType) for d in p.ty.shape
        ):
            (chunked if row_axes(func) is not None else symbolic).add(gvar.name_hint)
    assert any("matmul" in k and "add" in k for k in chunked)  # the projections
    assert any("layer_norm" in k for k in chunked)
    assert any(k.startswith("matmul") or "batch_matmul" in k for k in symbolic)  # q k^T and p v over seq x seq
    assert any("softmax" in k for k in symbolic)


def test_attention_products_over_seq_walk_the_output_with_the_head_dimension_unrolled():
    import tvm

    from wasm_build.compiler.pipeline import legalize_passes, optimize_passes, plan_for_bounds
    from wasm_build.compiler.symbolic_loops import symbolic_loop_pass
    from wasm_build.compiler.target import TargetOptions
    from wasm_build.frontends.onnx import load_onnx

    path = models.save(models.sequence_encoder(), Path(__import__("tempfile").mkdtemp()) / "enc.onnx")
    options = TargetOptions()
    with options.tvm_target(), tvm.transform.PassContext(opt_level=3):
        module = tvm.transform.Sequential(
            [*optimize_passes(), *legalize_passes(options.tvm_target(), options), symbolic_loop_pass()]
        )(plan_for_bounds(load_onnx(path, {}, {"seq": DimSpec(max=32)}).module))
    scripts = {
        gvar.name_hint: func.script()
        for gvar, func in module.functions_items()
        if isinstance(func, tvm.tirx.PrimFunc) and "matmul" in gvar.name_hint and row_axes(func) is None
    }
    # q k^T reduces over the static head dimension (16): four steps unrolled inside the loop over seq.
    assert any("in T.unroll(T.int64(4))" in text for text in scripts.values()), list(scripts)


# -- C ------------------------------------------------------------------------------------------------

C_PROGRAM = r"""
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bert.h"

static int64_t ids[BERT_INPUT0_MAX_BYTES / 8], mask[BERT_INPUT1_MAX_BYTES / 8];
static float hidden[BERT_OUTPUT0_MAX_BYTES / 4], logits[3];

/* Runs at length `seq` (mask length `mask_seq`) and writes hidden states to `path`. */
static int run(int64_t seq, int64_t mask_seq, const char* path) {
  for (int64_t i = 0; i < seq; ++i) ids[i] = (i * 7 + 3) % 100;
  for (int64_t i = 0; i < mask_seq; ++i) mask[i] = i < (seq + 1) / 2 + 1;
  const void* inputs[] = { ids, mask };
  int64_t input_shapes[BERT_INPUT_SHAPES_LEN] = { 1, seq, 1, mask_seq };
  size_t input_sizes[] = { (size_t)seq * 8, (size_t)mask_seq * 8 };
  void* outputs[] = { hidden, logits };
  int64_t output_shapes[BERT_OUTPUT_SHAPES_LEN];
  size_t output_sizes[] = { sizeof hidden, sizeof logits };
  int status = bert_run_dims(inputs, input_shapes, input_sizes, outputs, output_shapes, output_sizes);
  printf("seq %" PRId64 ": status %d", seq, status);
  if (status != BERT_OK) {
    printf(" %s\n", bert_last_error());
    return status;
  }
  printf(" shape %" PRId64 "x%" PRId64 "x%" PRId64 "\n", output_shapes[0], output_shapes[1], output_shapes[2]);
  FILE* file = fopen(path, "wb");
  fwrite(hidden, sizeof(float), (size_t)(output_shapes[0] * output_shapes[1] * output_shapes[2]), file);
  fclose(file);
  return status;
}

int main(void) {
  if (bert_init() != BERT_OK) return 1;
  bert_dim dim;
  int32_t axis_dim = -2;
  bert_tensor_info info;
  if (bert_dim_info(BERT_DIM_SEQ, &dim) != BERT_OK || bert_input_dim(1, 1, &axis_dim) != BERT_OK ||
      bert_input_info(0, &info) != BERT_OK)
    return 2;
  printf("dim %s %" PRId64 "..%" PRId64 " axis %d shape %" PRId64 "x%" PRId64 " max %zu\n", dim.name, dim.min, dim.max,
         (int)axis_dim, info.shape[0], info.shape[1], info.nbytes);
  if (bert_dim_info(5, &dim) != BERT_ERROR_INDEX) return 3;
  run(5, 5, "h5.f32");
  run(64, 64, "h64.f32");
  run(1, 1, "h1.f32");
  if (run(65, 65, "x") != BERT_ERROR_SHAPE) return 4;
  if (run(0, 0, "x") != BERT_ERROR_SHAPE) return 5;
  if (run(7, 8, "x") != BERT_ERROR_SHAPE) return 6;
  run(5, 5, "h5b.f32"); /* the shapes of an earlier run, after failed ones */
  return 0;
}
"""


def test_c_program_runs_every_length_and_gets_error_codes(clang, bert, torch_models, tmp_path):
    import torch

    for name in ("libbert.a", "bert.h"):
        shutil.copyfile(bert.directory / name, tmp_path / name)
    (tmp_path / "main.c").write_text(C_PROGRAM)
    compile_ok([clang, *WASI, "-O2", "-Wall", "-Wextra", "-Werror", "main.c", "libbert.a", "-lm", "-o", "main.wasm"], tmp_path)
    code, stdout, stderr = run_command(tmp_path / "main.wasm", tmp_path)
    assert code == 0, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0] == f"dim seq 1..64 axis 0 shape 1x-1 max {64 * 8}"
    assert "seq 65: status 8" in stdout and "outside its bounds 1..64" in stdout
    assert "seq 0: status 8" in stdout
    assert "seq 7: status 8" in stdout and "'attention_mask'" in stdout
    program = torch.export.load(str(bert.directory.parent / "bert.pt2")).module()
    for seq, file in ((5, "h5.f32"), (64, "h64.f32"), (1, "h1.f32"), (5, "h5b.f32")):
        assert f"seq {seq}: status 0 shape 1x{seq}x32" in stdout
        ids = torch.tensor([[(i * 7 + 3) % 100 for i in range(seq)]])
        mask = torch.tensor([[int(i < (seq + 1) // 2 + 1) for i in range(seq)]])
        with torch.no_grad():
            want = program(ids, mask)[0].numpy()
        got = np.fromfile(tmp_path / file, dtype="<f4").reshape(1, seq, 32)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=file)


# -- Rust ----------------------------------------------------------------------------------------------

RUST_MAIN = r"""
use std::fs;

fn main() {
    let mut model = enc::Model::new().expect("init");
    assert_eq!(enc::DIMS[0], enc::DimSpec { name: "seq", min: 1, max: 48 });
    assert_eq!(enc::INPUTS[0].shape, &[1, -1, 32]);
    for &seq in &[1usize, 6, 48] {
        let tokens: Vec<f32> = (0..seq * 32).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
        // Model::run: the length gives the one symbolic dimension.
        let outputs = model.run(&[enc::Input::from(&tokens[..])]).expect("run");
        let hidden = outputs[0].as_slice::<f32>().expect("f32");
        assert_eq!(hidden.len(), seq * 32);
        let bytes: Vec<u8> = hidden.iter().flat_map(|v| v.to_le_bytes()).collect();
        fs::write(format!("hidden{}.f32", seq), bytes).unwrap();
        // Model::run_dims: shapes in, shapes out.
        let shaped = model.run_dims(&[enc::Input::from(&tokens[..])], &[&[1, seq as i64, 32]]).expect("run_dims");
        assert_eq!(shaped[0].1, vec![1, seq as i64, 32]);
        assert_eq!(shaped[0].0, outputs[0]);
    }
    let too_long = vec![0f32; 49 * 32];
    let error = model.run(&[enc::Input::from(&too_long[..])]).unwrap_err();
    assert_eq!(error.kind(), enc::ErrorKind::Shape);
    assert_eq!(error.status(), Some(8));
    let ragged = vec![0f32; 33];
    assert_eq!(model.run(&[enc::Input::from(&ragged[..])]).unwrap_err().kind(), enc::ErrorKind::Shape);
    println!("ok {}", error);
}
"""


def test_rust_crate_runs_any_length_within_the_bounds(cargo, encoder_onnx, tmp_path):
    crate = write_crate(
        tmp_path / "app",
        f'[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{dependency(encoder_onnx)}\n',
        {"src/main.rs": RUST_MAIN},
    )
    wasm = cargo.build_ok(crate, "app")
    code, stdout, stderr = run_command(wasm, tmp_path)
    assert code == 0, stdout + stderr
    assert stdout.startswith("ok ") and "outside its bounds 1..48" in stdout
    onnx_model = models.sequence_encoder()
    for seq in (1, 6, 48):
        tokens = ((np.arange(seq * 32) * 37 % 101).astype(np.float32) / 50.0 - 1.0).reshape(1, seq, 32)
        (want,) = models.reference_outputs(onnx_model, {"tokens": tokens})
        got = np.fromfile(tmp_path / f"hidden{seq}.f32", dtype="<f4").reshape(1, seq, 32)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"seq={seq}")


def test_tvms_failure_on_a_dynamic_axes_export_says_what_to_do(tmp_path):
    # transformers' OPT, exported by the TorchScript exporter with a dynamic sequence length:
    # TVM 0.27 fails inside its lowering ("emit_te now only supports Tensor that has ShapeExpr
    # shape"). The error names the dimension and the two ways out; pinning the length builds.
    torch = pytest.importorskip("torch")
    import_torchvision()
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, ffn_dim=64,
                                    max_position_embeddings=32, word_embed_proj_dim=32)
    names = ["input_ids", "attention_mask"]
    example = (torch.randint(0, 100, (1, 8)), torch.ones(1, 8, dtype=torch.int64))
    model = export_onnx(last_hidden_state(transformers.OPTModel(config), names), example, names,
                        dynamic_axes={name: {1: "seq"} for name in names})
    path = tmp_path / "opt.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(WasmBuildError, match=r"could not compile the model with its symbolic dimensions \(seq\)") as info:
        build(path, "opt_dyn", tmp_path, dims={"seq": {"min": 1, "max": 16}})
    assert "pin them" in info.value.fix and "torch.export" in info.value.fix
    pinned = {name: {"shape": [1, 8], "dtype": "int64"} for name in names}
    build(path, "opt_pinned", tmp_path, inputs=pinned)  # the smoke test compares with onnxruntime


def test_dynamically_quantized_encoder_runs_integer_products_at_every_length(tmp_path):
    """`quantize_dynamic`'s int8 projections over a symbolic number of tokens are row chunks
    like float ones (their int8, int32 and float tensors only computed with, never indices), so
    they run on `dot_i16x8` tiles: before, an integer kernel stayed symbolic, a plain loop nest."""
    from tests.support.compiler import OBJDUMP, kernel_instructions
    from wasm_build.testing import quantized

    onnx_model = quantized.dynamic(models.sequence_encoder())
    assert "MatMulInteger" in {node.op_type for node in onnx_model.graph.node}
    built = build(onnx_model, "qenc", tmp_path, dims={"seq": {"min": 1, "max": 24}})
    # Kernels with a work estimate are static or chunked; a symbolic kernel has none.
    chunked = [name for name in built.manifest["kernel_work"] if "matmul" in name]
    assert chunked, built.manifest["kernel_work"]
    if OBJDUMP is not None:
        products = [name for name, counts in kernel_instructions(built.directory / "qenc.wasm").items()
                    if counts["i32x4.dot_i16x8_s"] and not name.startswith("__tvm_ffi")]
        assert len(products) >= 4, products  # the projections and the feed-forward layers
    model = WasmModel(built.directory / "qenc.wasm")
    for seq in (1, 3, 4, 5, 17, 24):
        inputs = models.random_inputs(onnx_model, seed=seq, dims={"seq": seq})
        (want,) = models.reference_outputs(onnx_model, inputs)
        (got,) = model.run(inputs)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=f"seq={seq}")
