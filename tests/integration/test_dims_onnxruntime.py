"""Bounded dynamic dimensions (issue 21) at the issue's bounds, seq in 1..128, against onnxruntime.

A BERT-style encoder (`input_ids` and `attention_mask` [1, seq]) and a causal decoder
(`ids` [1, seq]) are built once each from `torch.export` with `Dim("seq", 1, 128)`. The
reference at each length is onnxruntime running the same module exported to ONNX at that
length: TVM's ONNX frontend cannot import these modules' own dynamic-axes ONNX exports (see
docs/consumers.md, "Symbolic dimensions"), so the ONNX `dim_param` path is covered by
tests/integration/test_dynamic_dims.py's encoder. The generated Rust crate runs the encoder
through `Model::run_dims`; the smoke test of an ONNX model runs at its bounds and in between.
"""

from __future__ import annotations

import numpy as np
import pytest

from wasm_build.testing import models
from wasm_build.wasm.host import WasmModel, WasmModelError

from tests.support.rust import dependency, write_crate
from tests.support import build
from tests.support.wasm import run_command

MAX_LEN = 128
LENGTHS = (1, 2, 16, 77, MAX_LEN)  # the bounds, a row chunk's worth, one in between
ERROR_SHAPE = 8


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, torch_models):
    out = tmp_path_factory.mktemp("bert128")
    source = torch_models.export_encoder(out / "bert.pt2", max_len=MAX_LEN)
    # torch.export names the symbol (s0, s53, ...): the build names it "seq" through one input.
    return build(source, "bert", out, inputs={"input_ids": {"shape": [1, "seq"]}}, smoke_test=False)


@pytest.fixture(scope="module")
def decoder(tmp_path_factory, torch_models):
    out = tmp_path_factory.mktemp("dec128")
    source = torch_models.export_decoder(out / "dec.pt2", max_len=MAX_LEN)
    return build(source, "dec", out, inputs={"ids": {"shape": [1, "seq"]}}, smoke_test=False)


def _token_inputs(seq: int, vocab: int) -> dict[str, np.ndarray]:
    """Ids within the vocabulary; the mask pads the second half (at least one token kept)."""
    ids = np.random.default_rng(seq).integers(0, vocab, (1, seq)).astype(np.int64)
    mask = (np.arange(seq) <= seq // 2).astype(np.int64)[None]
    return {"input_ids": ids, "attention_mask": mask}


def _onnxruntime(module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs for `module` exported to ONNX at the feeds' shapes."""
    import torch

    from tests.support.export import export_onnx

    example = tuple(torch.from_numpy(x) for x in feeds.values())
    return models.reference_outputs(export_onnx(module, example, list(feeds)), feeds)


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())), err_msg=what)


def test_bert_encoder_matches_onnxruntime_from_1_to_128(encoder, torch_models):
    assert encoder.manifest["dims"] == [{"name": "seq", "min": 1, "max": MAX_LEN}]
    assert [i["shape"] for i in encoder.manifest["inputs"]] == [[1, "seq"], [1, "seq"]]
    model = WasmModel(encoder.directory / "bert.wasm")
    module = torch_models.seeded_encoder(MAX_LEN)
    for seq in (*LENGTHS, 16):  # 16 again: the shapes of an earlier run, after others
        feeds = _token_inputs(seq, 100)
        hidden, logits = model.run(feeds)
        want_hidden, want_logits = _onnxruntime(module, feeds)
        _assert_close(hidden, want_hidden, f"hidden, seq={seq}")
        _assert_close(logits, want_logits, f"logits, seq={seq}")


def test_causal_decoder_matches_onnxruntime_from_1_to_128(decoder, torch_models):
    model = WasmModel(decoder.directory / "dec.wasm")
    module = torch_models.seeded_decoder(MAX_LEN)
    for seq in LENGTHS:
        ids = np.random.default_rng(seq).integers(0, 50, (1, seq)).astype(np.int64)
        (got,) = model.run([ids])
        (want,) = _onnxruntime(module, {"ids": ids})
        _assert_close(got, want, f"seq={seq}")
    # Causality: the logits of a prefix do not change when tokens are appended.
    ids = np.random.default_rng(0).integers(0, 50, (1, 40)).astype(np.int64)
    (whole,) = model.run([ids])
    (prefix,) = model.run([ids[:, :9]])
    np.testing.assert_allclose(prefix, whole[:, :9], rtol=1e-5, atol=1e-5)


def test_out_of_bounds_lengths_are_an_error_code_then_runs_go_on(encoder, decoder):
    bert = WasmModel(encoder.directory / "bert.wasm")
    for seq in (0, MAX_LEN + 1):
        with pytest.raises(WasmModelError) as info:
            bert.run({"input_ids": np.zeros((1, seq), np.int64), "attention_mask": np.ones((1, seq), np.int64)})
        assert info.value.status == ERROR_SHAPE
        assert f"seq = {seq}" in info.value.message and f"1..{MAX_LEN}" in info.value.message
    dec = WasmModel(decoder.directory / "dec.wasm")
    with pytest.raises(WasmModelError) as info:
        dec.run([np.zeros((1, 500), np.int64)])
    assert info.value.status == ERROR_SHAPE and f"1..{MAX_LEN}" in info.value.message
    (logits,) = dec.run([np.zeros((1, 3), np.int64)])
    assert logits.shape == (1, 3, 50) and np.isfinite(logits).all()


def test_smoke_test_runs_the_bounds_and_between_against_onnxruntime(tmp_path):
    from wasm_build.build import build_model
    from wasm_build.config.settings import ModelSettings, from_dict

    source = models.save(models.sequence_encoder(), tmp_path / "enc.onnx")
    settings = from_dict(ModelSettings, {"name": "enc", "source": str(source), "dims": {"seq": {"min": 3, "max": 20}}})
    lines: list[str] = []
    build_model(settings, tmp_path / "out", project_dir=tmp_path, log=lines.append, verbose=True)  # verbose: per-comparison lines
    log = "\n".join(lines)
    for seq in (3, 12, 20):
        assert f"onnxruntime @ seq={seq}" in log and f"tvm-native @ seq={seq}" in log, log


RUST_MAIN = r"""
use std::fs;

fn write(path: &str, values: &[f32]) {
    fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn main() {
    let mut model = bert::Model::new().expect("init");
    assert_eq!(bert::DIMS[0], bert::DimSpec { name: "seq", min: 1, max: 128 });
    assert_eq!(bert::INPUTS[1].shape, &[1, -1]);
    for &seq in &[1usize, 16, 128] {
        let ids: Vec<i64> = (0..seq).map(|i| ((i * 7 + 3) % 100) as i64).collect();
        let mask: Vec<i64> = (0..seq).map(|i| (i <= seq / 2) as i64).collect();
        let shape = [1, seq as i64];
        let outputs = model
            .run_dims(&[bert::Input::from(&ids[..]), bert::Input::from(&mask[..])], &[&shape, &shape])
            .expect("run_dims");
        assert_eq!(outputs[0].1, vec![1, seq as i64, 32]);
        assert_eq!(outputs[1].1, vec![1, 3]);
        write(&format!("hidden{}.f32", seq), outputs[0].0.as_slice::<f32>().expect("f32"));
        write(&format!("logits{}.f32", seq), outputs[1].0.as_slice::<f32>().expect("f32"));
    }
    let ids = vec![0i64; 129];
    let error = model
        .run_dims(&[bert::Input::from(&ids[..]), bert::Input::from(&ids[..])], &[&[1, 129], &[1, 129]])
        .unwrap_err();
    assert_eq!(error.kind(), bert::ErrorKind::Shape);
    let short = vec![1i64; 5];
    let disagree = model
        .run_dims(&[bert::Input::from(&ids[..6]), bert::Input::from(&short[..])], &[&[1, 6], &[1, 5]])
        .unwrap_err();
    assert_eq!(disagree.kind(), bert::ErrorKind::Shape);
    println!("ok {}", error);
}
"""


def test_rust_run_dims_runs_the_encoder_from_1_to_128(cargo, encoder, torch_models, tmp_path):
    crate = write_crate(
        tmp_path / "app",
        f'[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{dependency(encoder)}\n',
        {"src/main.rs": RUST_MAIN},
    )
    code, stdout, stderr = run_command(cargo.build_ok(crate, "app"), tmp_path)
    assert code == 0, stdout + stderr
    assert stdout.startswith("ok ") and "1..128" in stdout
    module = torch_models.seeded_encoder(MAX_LEN)
    for seq in (1, 16, 128):
        feeds = {
            "input_ids": np.array([[(i * 7 + 3) % 100 for i in range(seq)]], np.int64),
            "attention_mask": (np.arange(seq) <= seq // 2).astype(np.int64)[None],
        }
        want_hidden, want_logits = _onnxruntime(module, feeds)
        _assert_close(np.fromfile(tmp_path / f"hidden{seq}.f32", "<f4").reshape(1, seq, 32), want_hidden, f"seq={seq}")
        _assert_close(np.fromfile(tmp_path / f"logits{seq}.f32", "<f4").reshape(1, 3), want_logits, f"seq={seq}")
