"""ONNX operator types grouped into families: the table's op-families column, and what the fast
tier must cover."""

from __future__ import annotations

from collections.abc import Iterable

_FAMILIES: dict[str, tuple[str, ...]] = {
    "conv": ("Conv",),
    "conv-transpose": ("ConvTranspose",),
    "matmul": ("MatMul", "Gemm", "Einsum"),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"),
    "norm": ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
             "SimplifiedLayerNormalization", "LpNormalization"),
    "activation": ("Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu",
                   "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu"),
    "softmax": ("Softmax", "LogSoftmax"),
    "arithmetic": ("Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Max", "Min", "Sum",
                   "Mean", "Floor", "Ceil", "Round", "Sign", "Mod", "Sin", "Cos"),
    "logic": ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Not", "Xor", "Where", "IsNaN", "IsInf"),
    "reduce": ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
               "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK"),
    "shape": ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Size", "Expand", "ConstantOfShape", "Range", "Tile"),
    "layout": ("Transpose", "Concat", "Split", "Slice", "Pad", "DepthToSpace", "SpaceToDepth", "Trilu"),
    "gather": ("Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "OneHot"),
    "resize": ("Resize", "Upsample"),
    "recurrent": ("GRU", "LSTM", "RNN"),
    "cast": ("Cast", "CastLike"),
    "quantize": ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"),
    "plumbing": ("Constant", "Identity", "Dropout"),
}
_BY_OP = {op: family for family, ops in _FAMILIES.items() for op in ops}
FAMILIES = tuple(_FAMILIES)


def family(op_type: str) -> str:
    """An operator's family; an operator not listed here is a family of its own (its name)."""
    return _BY_OP.get(op_type, op_type)


def families(op_types: Iterable[str]) -> list[str]:
    """Distinct families in `FAMILIES` order, unlisted operators last; plumbing is left out."""
    found = {family(op) for op in op_types} - {"plumbing"}
    return sorted(found, key=lambda f: (FAMILIES.index(f) if f in FAMILIES else len(FAMILIES), f))
