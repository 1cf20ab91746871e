"""Transformer encoders with an attention mask (issue 18): int64 `input_ids` and
`attention_mask`, exported by torch, build and match onnxruntime.

The mask code of transformers makes a scalar with `ConstantOfShape` of an empty shape, which
TVM's converter cannot import (`onnx_rewrites.constant_of_shape_scalar`); RoBERTa's
position ids also need a cumsum kernel, which the weight-packing fold must let be.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wasm_build.frontends.onnx_rewrites import apply_rewrites as apply
from wasm_build.testing.torchvision import import_torchvision

from tests.support.export import build_and_compare, export_onnx, last_hidden_state

SEQ, VOCAB = 8, 100


def _token_inputs(batch: int = 2) -> list[np.ndarray]:
    """Ids within the vocabulary and a mask with padding at the end of the second sequence."""
    ids = np.random.default_rng(3).integers(0, VOCAB, (batch, SEQ)).astype(np.int64)
    mask = np.ones((batch, SEQ), dtype=np.int64)
    mask[-1, SEQ // 2 :] = 0
    return [ids, mask]


def _masked_scores() -> onnx.ModelProto:
    """The exporters' pattern alone: a scalar from ConstantOfShape([]) fills masked scores."""
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 4])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Constant", [], ["empty"], value=numpy_helper.from_array(np.zeros(0, np.int64))),
        helper.make_node("ConstantOfShape", ["empty"], ["fill"], value=numpy_helper.from_array(np.array([-1e4], np.float32))),
        helper.make_node("Cast", ["mask"], ["keep"], to=TensorProto.BOOL),
        helper.make_node("Where", ["keep", "scores", "fill"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "masked_scores", [scores, mask], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_constant_of_empty_shape_becomes_a_scalar_constant():
    model = _masked_scores()
    rewritten = apply(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert [n.op_type for n in rewritten.graph.node] == ["Constant", "Constant", "Cast", "Where"]
    fill = numpy_helper.to_array(rewritten.graph.node[1].attribute[0].t)
    assert fill.shape == () and fill.dtype == np.float32 and fill == -1e4
    assert model.graph.node[1].op_type == "ConstantOfShape"  # the reference stays the original


def test_masked_scores_build_and_match(tmp_path):
    mask = np.array([[1, 1, 0, 1]], dtype=np.int64)
    scores = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    build_and_compare(_masked_scores(), "masked", tmp_path, [scores, mask])


def _encoder(kind: str):
    torch = pytest.importorskip("torch")
    import_torchvision()
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    sizes = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    sizes.update(intermediate_size=64, max_position_embeddings=64)
    configs = {
        "bert": lambda: transformers.BertModel(transformers.BertConfig(**sizes)),
        "distilbert": lambda: transformers.DistilBertModel(
            transformers.DistilBertConfig(
                vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64
            )
        ),
        "roberta": lambda: transformers.RobertaModel(transformers.RobertaConfig(**sizes)),
    }
    names = ["input_ids", "attention_mask"]
    example = tuple(torch.from_numpy(x) for x in _token_inputs())
    return export_onnx(last_hidden_state(configs[kind](), names), example, names)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_transformer_encoder_with_attention_mask(tmp_path, kind):
    model = _encoder(kind)
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.INT64] * 2
    build_and_compare(model, kind, tmp_path, _token_inputs())
