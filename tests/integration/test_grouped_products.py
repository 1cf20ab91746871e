"""Grouped convs as products over a group axis of their own (`compiler.passes.grouped_products`,
issue 19): int8 RegNetY-400MF ran its grouped 3x3 convs as plain loops (TVM's kernel indexes the
activations with the output channel, and the dot-product tiles did not apply), slower than its
float32 build."""

from __future__ import annotations

import pytest

tvm = pytest.importorskip("tvm")
torch = pytest.importorskip("torch")

from tvm import relax  # noqa: E402

from wasm_build import WasmModel  # noqa: E402
from wasm_build.testing import quantized  # noqa: E402

from tests.support import build  # noqa: E402
from tests.support.compiler import OBJDUMP, kernel_instructions  # noqa: E402
from tests.support.export import build_and_compare, export_onnx  # noqa: E402
from tests.support.steps import worst_steps  # noqa: E402

# name -> (channels, channels a group, map size, stride, dilation)
CONVS = {
    "regnet-groups-of-8": (48, 8, 12, 1, 1),
    "strided-groups-of-16": (64, 16, 9, 2, 1),
    "dilated-groups-of-24": (96, 24, 7, 1, 2),
    "groups-of-4": (32, 4, 8, 1, 1),  # int8 only: float keeps TVM's kernel (see the pass)
}


class Grouped(torch.nn.Module):
    def __init__(self, channels: int, per_group: int, stride: int, dilation: int):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, channels, 1)
        self.conv = torch.nn.Conv2d(channels, channels, 3, stride=stride, padding=dilation, dilation=dilation,
                                    groups=channels // per_group)

    def forward(self, x):
        return torch.relu(self.conv(torch.relu(self.stem(x))))


def _model(name: str):
    channels, per_group, size, stride, dilation = CONVS[name]
    torch.manual_seed(0)
    return export_onnx(Grouped(channels, per_group, stride, dilation), (torch.randn(1, 3, size, size),), ["x"])


def _rewritten(model, tmp_path) -> bool:
    """Whether the graph passes wrote the model's grouped conv over a group axis."""
    from tests.support.compiler import WASM, fused_module

    mod = fused_module(model, WASM, schedule=False, graph_passes=True)
    return any("conv2d_grouped" in gvar.name_hint for gvar, _ in mod.functions_items())


@pytest.mark.parametrize("name", list(CONVS))
def test_float_grouped_convs_build_and_match(tmp_path, name):
    model = _model(name)
    assert _rewritten(model, tmp_path) == (CONVS[name][1] >= 8)
    build_and_compare(model, "grouped", tmp_path)


@pytest.mark.parametrize("name", list(CONVS))
def test_int8_grouped_convs_multiply_pairs_within_a_step(tmp_path, name):
    model = quantized.qdq(_model(name))
    directory = build(model, "grouped8", tmp_path).directory
    worst = worst_steps(model, WasmModel(directory / "grouped8.wasm"), seeds=range(3))
    assert max(worst.values()) <= 1.0 + 1e-3, worst
    if OBJDUMP is None:
        pytest.skip("llvm-objdump(-19) not installed")
    kernels = kernel_instructions(directory / "grouped8.wasm")
    grouped = [c for k, c in kernels.items() if "conv2d_grouped" in k and not k.startswith("__tvm_ffi")]
    assert grouped and all(c["i32x4.dot_i16x8_s"] for c in grouped), list(kernels)
