"""`Resize` by scales that do not give whole output sizes (7 rows x 2.5 -> 17), as two products
with interpolation matrices made at build time.

ONNX maps an output coordinate back through the scale given: `(x + 0.5) / 2.5 - 0.5` for
"half_pixel". TVM's converter turns the scales into output sizes and maps through their ratio
(17 / 7), so every output but the first lands elsewhere: PyTorch's `interpolate(scale_factor=2.5)`
gave values off by 0.8 (a smoke-test mismatch no setting mends). ONNX's interpolations are
separable, so along each resized axis the operator is a matrix: output row i is
`sum_k W[i, k] * input row k`. The matrices are the operator itself applied to an identity, by
onnxruntime (the smoke test's reference; ONNX's reference implementation reads
"align_corners" with fractional scales differently), for every mode, coordinate
transformation, cubic coefficient and `exclude_outside`; the resize becomes `W_h @ x @ W_wᵀ`,
two MatMuls TVM imports as they are.
Scales that give whole sizes, sizes given, "align_corners" (which maps through the sizes, as TVM
does) and "tf_crop_and_resize" (its extrapolation value) are left to TVM.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .graph import DEFAULT_DOMAINS, Constants, add_initializer, default_opset, fresh_name, infer_facts
from .recurrent import attribute

_SCALES_INPUT_OPSET = 11  # Resize(X, roi, scales, sizes); opset 10 had Resize(X, scales)
# Coordinate transformations that map through the sizes (as TVM does), or that TVM handles with
# an extrapolation value the matrices cannot carry.
_BY_SIZES = ("align_corners", "tf_crop_and_resize")
# Attributes that shape the interpolation along one axis (the rest are about sizes and axes).
_INTERPOLATION = ("mode", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside", "nearest_mode")


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    opset = default_opset(model)
    if opset < _SCALES_INPUT_OPSET:
        return model
    known = Constants(model)
    facts = infer_facts(model)  # once: the rewrite adds only initializers and MatMuls of known shapes
    for node in list(model.graph.node):
        if node.op_type != "Resize" or node.domain not in DEFAULT_DOMAINS:
            continue
        shape = facts.shape(node.input[0])
        scales = _scales(node, known)
        if shape is None or not all(isinstance(d, int) for d in shape) or scales is None:
            continue
        if len(shape) not in (3, 4) or len(scales) != len(shape):
            continue
        if all(float(n * s).is_integer() for n, s in zip(shape, scales)) or any(s != 1 for s in scales[:2]):
            continue  # whole sizes: TVM's ratio is the scale; batch or channel scaling: not an image resize
        if attribute(node, "coordinate_transformation_mode", "half_pixel") in _BY_SIZES:
            continue
        if facts.elem_types.get(node.input[0]) != TensorProto.FLOAT:
            continue  # a quantized resize stays between its dequantize and quantize
        _replace(model, node, shape, scales, opset)
    return model


def _scales(node: onnx.NodeProto, known: Constants) -> list[float] | None:
    """The constant scales of a Resize that gives no sizes (opset 11 on)."""
    if len(node.input) < 3 or not node.input[2] or node.input[2] not in known:
        return None
    if len(node.input) > 3 and node.input[3]:
        return None
    if any(a.name in ("axes", "antialias", "keep_aspect_ratio_policy") for a in node.attribute):
        return None  # opset 18's variants: not seen from exporters; TVM's reading stands
    return [float(s) for s in known[node.input[2]].reshape(-1)]


def _replace(model: onnx.ModelProto, node: onnx.NodeProto, shape: tuple[int, ...], scales: list[float], opset: int) -> None:
    """`node` as MatMuls by the interpolation matrices of its resized axes (the last, or the
    last two)."""
    nodes, current = [], node.input[0]
    spatial = list(range(2, len(shape)))
    for axis in reversed(spatial):  # the last axis first: x @ W_wᵀ, then W_h @ (x @ W_wᵀ)
        if scales[axis] == 1:
            continue
        matrix = _interpolation_matrix(node, shape[axis], scales[axis], opset)
        result = fresh_name(model, f"{node.output[0]}_axis{axis}")
        if axis == len(shape) - 1:
            weights = add_initializer(model, f"{node.name or 'resize'}_columns", matrix.T.copy())
            nodes.append(helper.make_node("MatMul", [current, weights], [result]))
        else:
            weights = add_initializer(model, f"{node.name or 'resize'}_rows", matrix)
            nodes.append(helper.make_node("MatMul", [weights, current], [result]))
        current = result
    nodes[-1].output[0] = node.output[0]
    position = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for offset, new in enumerate(nodes):
        model.graph.node.insert(position + offset, new)


def _interpolation_matrix(node: onnx.NodeProto, size: int, scale: float, opset: int) -> np.ndarray:
    """W (outputs x `size`) such that resizing a vector along one axis is `W @ vector`: the
    node's own interpolation applied to each unit vector, by onnxruntime."""
    identity = np.eye(size, dtype=np.float32).reshape(1, 1, size, size)
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in _INTERPOLATION}
    resize = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attributes)
    graph = helper.make_graph(
        [resize], "interpolation",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, identity.shape),
         helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4])],
        [helper.make_empty_tensor_value_info("y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (columns,) = session.run(None, {"x": identity, "scales": np.array([1, 1, scale, 1], np.float32)})
    return np.asarray(columns, np.float32)[0, 0]  # (outputs, size): column k is unit vector k resized
