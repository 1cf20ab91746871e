"""Kernel taps that only ever read padding are dropped from convs
(`compiler.passes.padding_taps`, issue 20): DeepLab's atrous pyramid at a small resolution
(3x3 convs dilated 12 / 24 / 36 on a 4x4 map) spent 77% of the model's time multiplying zeros."""

from __future__ import annotations

import pytest

tvm = pytest.importorskip("tvm")
torch = pytest.importorskip("torch")
nn = torch.nn

from tvm import relax  # noqa: E402

from tests.support.export import build_and_compare, export_onnx  # noqa: E402

# (channels in, out, kernel, dilation, padding, stride, groups, map size) -> kernel left
CONVS = {
    "aspp-3x3-d12-on-4x4": ((16, 8, 3, 12, 12, 1, 1, 4), (1, 1)),
    "aspp-3x3-d36-on-6x5": ((16, 8, 3, 36, 36, 1, 1, (6, 5)), (1, 1)),
    "depthwise-5x5-d2-on-4x4": ((16, 16, 5, 2, 4, 1, 16, 4), (3, 3)),
    "3x3-d3-on-3x8": ((8, 8, 3, 3, 3, 1, 1, (3, 8)), (1, 3)),      # rows collapse, columns keep all taps
    "strided-5x5-d4-on-5x5": ((8, 8, 5, 4, 8, 2, 1, 5), (3, 3)),
    "3x3-d2-on-8x8": ((8, 8, 3, 2, 2, 1, 1, 8), (3, 3)),            # every tap reads input: unchanged
}


class Atrous(nn.Module):
    def __init__(self, spec):
        super().__init__()
        cin, cout, kernel, dilation, padding, stride, groups, _ = spec
        self.stem = nn.Conv2d(3, cin, 1)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def forward(self, x):
        return torch.relu(self.conv(torch.relu(self.stem(x))))


def _model(spec):
    size = spec[-1] if isinstance(spec[-1], tuple) else (spec[-1], spec[-1])
    torch.manual_seed(0)
    return export_onnx(Atrous(spec), (torch.randn(1, 3, *size),), ["x"])


@pytest.mark.parametrize("name", list(CONVS))
def test_dilated_convs_on_small_maps_build_and_match(tmp_path, name):
    build_and_compare(_model(CONVS[name][0]), "atrous", tmp_path)


@pytest.mark.parametrize("name", list(CONVS))
def test_taps_reading_only_padding_are_dropped(tmp_path, name):
    from wasm_build.compiler.passes.padding_taps import padding_taps_pass
    from wasm_build.frontends.onnx import load_onnx

    path = tmp_path / "model.onnx"
    path.write_bytes(_model(CONVS[name][0]).SerializeToString())
    mod = padding_taps_pass()(relax.transform.FoldConstant()(load_onnx(path, {}).module))
    kernels = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.nn.conv2d":
            kernels.append(tuple(int(d) for d in expr.args[1].ty.shape.values[2:]))

    relax.analysis.post_order_visit(mod["main"], visit)
    assert sorted(kernels) == sorted([(1, 1), CONVS[name][1]])


@pytest.mark.parametrize("name", ["aspp-3x3-d12-on-4x4", "depthwise-5x5-d2-on-4x4"])
def test_quantized_convs_drop_taps_reading_only_padding(tmp_path, name):
    """A QDQ model's convs, integer products by then (`integer_contractions`: zero padding, as
    the zero point is never padded), lose the same taps (an int8 DeepLabV3 ran its pyramid's
    dilated convs whole: 2.3x its float build), and the model stays within a step of onnxruntime."""
    from wasm_build import WasmModel
    from wasm_build.compiler.passes import quantized_passes
    from wasm_build.compiler.passes.padding_taps import padding_taps_pass
    from wasm_build.frontends.onnx import load_onnx
    from wasm_build.testing import quantized

    from tests.support import build
    from tests.support.steps import worst_steps

    model = quantized.qdq(_model(CONVS[name][0]))
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    mod = padding_taps_pass()(quantized_passes()(load_onnx(path, {}).module))
    kernels = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.nn.conv2d":
            assert str(expr.attrs.out_dtype) == "int32", "an integer product"
            kernels.append(tuple(int(d) for d in expr.args[1].ty.shape.values[2:]))

    relax.analysis.post_order_visit(mod["main"], visit)
    whole = (CONVS[name][0][2],) * 2
    assert CONVS[name][1] in kernels and whole not in kernels, kernels
    directory = build(model, "atrous_int8", tmp_path / "build").directory
    worst = worst_steps(model, WasmModel(directory / "atrous_int8.wasm"), seeds=range(3))
    assert max(worst.values()) <= 1.0 + 1e-3, worst
