"""Integer inputs that index a table (token ids, token types, positions): the build finds their
range, the executor refuses a value outside it (status 9, never a read past the table), and the
smoke test draws inside it (a BERT's token types index a table of 2: drawn from 0..7, the
smoke test used to fail in onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from wasm_build import WasmBuildError, WasmModel, WasmModelError
from wasm_build.compiler.input_values import ValueRange, input_value_ranges
from wasm_build.frontends import load_model
from wasm_build.testing.torchvision import import_torchvision

from tests.support import build
from tests.support.export import build_and_compare, export_onnx, last_hidden_state

WORDS, TYPES, SEQ, DIM = 50, 2, 8, 16


def _embeddings(index_ops: tuple[str, ...] = ("Cast",), type_rows: int = TYPES) -> onnx.ModelProto:
    """Word embeddings of int64 `ids` plus token-type embeddings of `types` (through
    `index_ops`: a Cast to int32, an arithmetic shift, a narrowing cast)."""
    rng = np.random.default_rng(0)
    words = numpy_helper.from_array(rng.standard_normal((WORDS, DIM)).astype(np.float32), "words")
    types = numpy_helper.from_array(rng.standard_normal((type_rows, DIM)).astype(np.float32), "types")
    nodes, last = [], "types_in"
    for i, op in enumerate(index_ops):
        out = f"t{i}"
        if op == "Cast":
            nodes.append(helper.make_node("Cast", [last], [out], to=TensorProto.INT32))
        elif op == "Cast8":
            nodes.append(helper.make_node("Cast", [last], [out], to=TensorProto.INT8))
        elif op == "Shift":
            nodes.append(helper.make_node("Add", [last, "one"], [out]))
        elif op == "Reshape":
            nodes.append(helper.make_node("Reshape", [last, "flat"], [out]))
        last = out
    nodes += [
        helper.make_node("Gather", ["words", "ids"], ["w"]),
        helper.make_node("Gather", ["types", last], ["t"]),
        helper.make_node("Reshape", ["t", "back"], ["t2"]),
        helper.make_node("Add", ["w", "t2"], ["y"]),
    ]
    constants = [
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([SEQ], np.int64), "flat"),
        numpy_helper.from_array(np.array([1, SEQ, DIM], np.int64), "back"),
    ]
    graph = helper.make_graph(
        nodes,
        "embeddings",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, SEQ]),
         helper.make_tensor_value_info("types_in", TensorProto.INT64, [1, SEQ])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SEQ, DIM])],
        [words, types, *constants],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ranges(model, tmp_path) -> dict[int, ValueRange]:
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return input_value_ranges(load_model(str(path), {}, tmp_path).module)


def test_gathers_bound_their_inputs_with_negatives_counted_from_the_end(tmp_path):
    # ONNX Gather admits -rows..rows-1; through a Cast and a Reshape the input still indexes.
    ranges = _ranges(_embeddings(("Cast", "Reshape")), tmp_path)
    assert ranges == {0: ValueRange(-WORDS, WORDS - 1), 1: ValueRange(-TYPES, TYPES - 1)}


@pytest.mark.parametrize("ops", [("Shift",), ("Cast8",)], ids=["arithmetic", "narrowing-cast"])
def test_indices_changed_on_the_way_are_not_bounded(tmp_path, ops):
    # `types + 1` may hold -1 legitimately; an int8 cast wraps 256 to 0. Neither is the input's range.
    assert _ranges(_embeddings(ops), tmp_path) == {0: ValueRange(-WORDS, WORDS - 1)}


def test_an_input_indexing_two_tables_fits_the_smaller(tmp_path):
    rng = np.random.default_rng(1)
    tables = [numpy_helper.from_array(rng.standard_normal((rows, 4)).astype(np.float32), f"table{rows}") for rows in (9, 5)]
    nodes = [helper.make_node("Gather", [t.name, "ids"], [f"g{i}"]) for i, t in enumerate(tables)]
    nodes.append(helper.make_node("Add", ["g0", "g1"], ["y"]))
    graph = helper.make_graph(
        nodes, "two_tables", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], tables,
    )
    assert _ranges(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path) == {0: ValueRange(-5, 4)}


def test_the_executor_refuses_an_index_outside_its_table(tmp_path):
    # The smoke test runs (default on) and passes: it draws token types from 0..1, not 0..7.
    result = build(_embeddings(), "emb", tmp_path)
    manifest = json.loads((result.directory / "emb.json").read_text())
    assert [i.get("values") for i in manifest["inputs"]] == [{"min": -WORDS, "max": WORDS - 1}, {"min": -TYPES, "max": TYPES - 1}]
    header = (result.directory / "emb.h").read_text()
    assert "#define EMB_ERROR_VALUE 9" in header and "#define EMB_INPUT1_VALUES_MAX 1" in header

    wasm = WasmModel(result.directory / "emb.wasm")
    session = ort.InferenceSession((tmp_path / "emb.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    ids = np.array([[0, 49, -1, -50, 7, 3, 2, 1]], np.int64)
    types = np.array([[0, 1, -1, -2, 1, 0, 0, 1]], np.int64)  # negatives count from the end, as in onnxruntime
    (want,) = session.run(None, {"ids": ids, "types_in": types})
    (got,) = wasm.run([ids, types])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    for bad, where in ((2, 3), (-3, 5), (2**40, 0)):
        wrong = types.copy()
        wrong[0, where] = bad
        with pytest.raises(WasmModelError) as error:
            wasm.run([ids, wrong])
        assert error.value.status == 9
        message = str(error.value)
        assert f"input 1 ('types_in') holds {bad} at element {where}, outside -2..1" in message
    # A refused run leaves the model usable.
    np.testing.assert_allclose(wasm.run([ids, types])[0], want, rtol=1e-6, atol=1e-6)


def test_bert_with_token_types_builds_with_its_smoke_test(tmp_path):
    # transformers' BertModel: token_type_ids index a table of 2 (type_vocab_size), positions 64.
    torch = pytest.importorskip("torch")
    import_torchvision()  # transformers' models import torchvision when it is there
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    names = ["input_ids", "token_type_ids"]
    ids = np.random.default_rng(2).integers(0, 100, (1, SEQ)).astype(np.int64)
    types = np.array([[0] * 4 + [1] * 4], np.int64)
    encoder = last_hidden_state(transformers.BertModel(config), names)
    model = export_onnx(encoder, (torch.from_numpy(ids), torch.from_numpy(types)), names)
    build_and_compare(model, "bert_types", tmp_path, [ids, types])
    manifest = json.loads((tmp_path / "bert_types" / "bert_types.json").read_text())
    assert manifest["inputs"][1]["values"]["max"] == 1


def test_torch_embedding_admits_no_negative_index(tmp_path):
    # torch.nn.Embedding refuses negative indices: the range starts at 0.
    torch = pytest.importorskip("torch")

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(6, 4)

        def forward(self, ids):
            return self.table(ids) * 2.0

    torch.manual_seed(0)
    example = torch.zeros((1, 5), dtype=torch.int64)
    torch.export.save(torch.export.export(Embed(), (example,)), str(tmp_path / "embed.pt2"))
    result = build("embed.pt2", "embed", tmp_path)
    manifest = json.loads((result.directory / "embed.json").read_text())
    assert manifest["inputs"][0]["values"] == {"min": 0, "max": 5}
    wasm = WasmModel(result.directory / "embed.wasm")
    with pytest.raises(WasmModelError, match=r"holds -1 at element 2, outside 0\.\.5"):
        wasm.run([np.array([[0, 1, -1, 3, 4]], np.int64)])


def test_symbolic_lengths_check_the_values_of_the_run_s_shape(tmp_path):
    # NAME_run_dims checks the elements of the shape given, not those of the upper bounds.
    table = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["y"])], "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, [1, "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", 4])], [table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = build(model, "lookup", tmp_path, dims={"seq": {"min": 1, "max": 16}})
    wasm = WasmModel(result.directory / "lookup.wasm")
    ids = np.array([[2, -3, 0]], np.int32)
    np.testing.assert_array_equal(wasm.run([ids])[0], np.arange(12, dtype=np.float32).reshape(3, 4)[ids])
    with pytest.raises(WasmModelError, match=r"lookup_run_dims: input 0 \('ids'\) holds 3 at element 2, outside -3\.\.2"):
        wasm.run([np.array([[0, 1, 3]], np.int32)])


def test_indices_the_model_computes_are_clamped_to_the_table(tmp_path):
    # `types + 1` is not an input the executor can check; the gather clamps instead of reading
    # past its table (a trap, or another tensor's bytes), however far off the value is.
    model = _embeddings(("Shift", "Cast"))
    with pytest.raises(WasmBuildError, match=r"onnxruntime refused the smoke test's made-up inputs: .*out of data bounds"):
        build(model, "shifted", tmp_path)  # it draws types 0/1: onnxruntime refuses 1 + 1
    result = build(model, "shifted", tmp_path, smoke_test=False)
    assert "values" not in json.loads((result.directory / "shifted.json").read_text())["inputs"][1]
    ids = np.zeros((1, SEQ), np.int64)
    types = np.array([[0, 1, 5, 2**20, -2, -3, -2**20, 0]], np.int64)
    (got,) = WasmModel(result.directory / "shifted.wasm").run([ids, types])
    words, table = (numpy_helper.to_array(t) for t in model.graph.initializer[:2])
    shifted = types + 1
    rows = np.clip(np.where(shifted < 0, shifted + TYPES, shifted), 0, TYPES - 1)
    np.testing.assert_allclose(got, words[ids] + table[rows], rtol=1e-6, atol=1e-6)


def test_untraced_integer_inputs_are_drawn_as_masks():
    # 0/1: an attention mask summed into positions (OPT) stays inside the table of positions.
    from wasm_build.wasm.inputs import random_array

    rng = np.random.default_rng(0)
    assert set(np.unique(random_array((64,), "int64", rng))) == {0, 1}
    assert set(np.unique(random_array((64,), "int64", rng, ValueRange(-50, 49)))) == set(range(8))
    assert set(np.unique(random_array((64,), "int32", rng, ValueRange(-2, 1)))) == {0, 1}
    assert set(np.unique(random_array((256,), "uint8", rng))) == set(range(8))  # quantized data
