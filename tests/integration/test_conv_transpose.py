"""Decoders with transposed convs (issue 18): U-Net-style models with ConvTranspose (strides,
groups, output padding, dilation) and Resize build and match onnxruntime.

The NHWC pass converted every conv-like op to NHWC, `conv2d_transpose` included, which TVM
legalizes in NCHW/IOHW only: it reached the static executor un-lowered. The pass now keeps it
in NCHW (`compiler.passes.nhwc_conv`). Undilated transposed convs become one ordinary conv
per output phase (`compiler.passes.subpixel_convs`, issue 20), 1-D convs 2-D ones
(`compiler.passes.conv1d_planes`): both checked here against onnxruntime.
"""

from __future__ import annotations

import pytest
import tvm
from tvm import relax

from wasm_build.compiler.passes import nhwc_conv

from tests.support.export import build_and_compare, export_onnx

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

# (in, out, kernel, stride, padding, output_padding, groups, dilation)
DECONVS = {
    "k2s2": (8, 4, 2, 2, 0, 0, 1, 1),
    "k3s2-outpad-groups": (8, 4, 3, 2, 1, 1, 2, 1),
    "k3-dilation-asymmetric-stride": (8, 6, 3, (1, 2), (2, 1), (0, 1), 1, 2),
    "k4s2-depthwise": (8, 8, 4, 2, 1, 0, 8, 1),
    # phases with different tap counts (2x2, 2x1, 1x2, 1x1): a conv per phase
    "k3s2": (8, 12, 3, 2, 1, 0, 1, 1),
    # kernel 1 at stride 2: three phases without taps (zeros, then the bias)
    "k1s2": (8, 4, 1, 2, 0, 1, 1, 1),
    "k5s3-pad2": (4, 8, 5, 3, 2, 2, 1, 1),
    "k3s1-pad1": (8, 8, 3, 1, 1, 0, 1, 1),
    "k2x3-stride-2x1-groups4": (8, 8, (2, 3), (2, 1), (0, 1), 0, 4, 1),
}


class Decoder(nn.Module):
    """conv -> transposed conv -> conv, so the NHWC pass runs around the transposed conv."""

    def __init__(self, spec):
        super().__init__()
        cin, cout, kernel, stride, padding, output_padding, groups, dilation = spec
        self.enc = nn.Conv2d(3, cin, 3, padding=1)
        self.up = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, groups, dilation=dilation)
        self.head = nn.Conv2d(cout, 2, 1)

    def forward(self, x):
        return self.head(F.relu(self.up(F.relu(self.enc(x)))))


class UNet(nn.Module):
    """Two levels, skip connections, a transposed conv and a bilinear Resize on the way up."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.e1 = nn.Conv2d(3, c, 3, padding=1)
        self.e2 = nn.Conv2d(c, 2 * c, 3, padding=1, stride=2)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.d1 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.side = nn.Conv2d(2 * c, c, 1)
        self.out = nn.Conv2d(2 * c, 2, 1)

    def forward(self, x):
        a = F.relu(self.e1(x))
        b = F.relu(self.e2(a))
        u = F.relu(self.d1(torch.cat([F.relu(self.up(b)), a], 1)))
        s = F.interpolate(self.side(b), scale_factor=2, mode="bilinear", align_corners=False)
        n = F.interpolate(self.side(b), scale_factor=2, mode="nearest")
        return self.out(torch.cat([u + n, s], 1))


def _model(module, size: int = 12):
    torch.manual_seed(0)
    return export_onnx(module, (torch.randn(1, 3, size, size),), ["image"])


@pytest.mark.parametrize("name", list(DECONVS))
def test_transposed_conv_after_conv_builds_and_matches(tmp_path, name):
    build_and_compare(_model(Decoder(DECONVS[name])), "decoder", tmp_path)


def test_transposed_convs_of_a_batch_build_and_match(tmp_path):
    """Two images: the phases' interleave reshapes keep the batch axis apart."""
    torch.manual_seed(0)
    model = export_onnx(Decoder(DECONVS["k3s2-outpad-groups"]), (torch.randn(2, 3, 7, 9),), ["image"])
    build_and_compare(model, "decoder", tmp_path)


def test_unet_with_resize_builds_and_matches(tmp_path):
    build_and_compare(_model(UNet(), size=16), "unet", tmp_path)


class Sequence1d(nn.Module):
    """Conv1d stack: dilated causal (left padding), strided and grouped, then a 1-D transposed
    conv whose kernel is not a multiple of its stride, and one with stride = kernel."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(6, 12, 1)
        self.dilated = nn.Conv1d(12, 12, 3, dilation=2)
        self.strided = nn.Conv1d(12, 8, 5, stride=2, padding=2, groups=4)
        self.up = nn.ConvTranspose1d(8, 6, 5, stride=2, padding=1, output_padding=1)
        self.up4 = nn.ConvTranspose1d(6, 3, 4, stride=4)

    def forward(self, x):
        x = self.inp(x)
        x = x + F.relu(self.dilated(F.pad(x, (4, 0))))
        return self.up4(F.relu(self.up(F.relu(self.strided(x)))))


def _conv_ops(model, tmp_path) -> list[str]:
    """The conv ops of ``model`` (imported as builds import it) after the two rewrites."""
    from wasm_build.compiler.passes import conv1d_planes, subpixel_convs
    from wasm_build.frontends.onnx import load_onnx

    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    mod = relax.transform.FoldConstant()(load_onnx(path, {}).module)
    mod = subpixel_convs.subpixel_convs_pass()(conv1d_planes.conv1d_planes_pass()(mod))
    ops = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name.startswith("relax.nn.conv"):
            ops.append(expr.op.name)

    relax.analysis.post_order_visit(mod["main"], visit)
    return sorted(ops)


def test_one_dimensional_convs_build_and_match(tmp_path):
    torch.manual_seed(0)
    model = export_onnx(Sequence1d(), (torch.randn(1, 6, 37),), ["frames"])
    build_and_compare(model, "sequence", tmp_path)


def test_conv1d_and_transposed_convs_become_plain_conv2d(tmp_path):
    torch.manual_seed(0)
    ops = _conv_ops(export_onnx(Sequence1d(), (torch.randn(1, 6, 37),), ["frames"]), tmp_path)
    # 3 conv1d -> 3 conv2d; ConvTranspose1d k5 s2 -> 2 phases (3 and 2 taps), k4 s4 -> 1 conv
    assert ops == ["relax.nn.conv2d"] * 6
    dilated = _conv_ops(_model(Decoder(DECONVS["k3-dilation-asymmetric-stride"])), tmp_path)
    assert dilated.count("relax.nn.conv2d_transpose") == 1  # dilated: TVM's own kernel


def test_phases_without_taps_store_no_constant(tmp_path):
    """A kernel-1, stride-2 transposed conv has three phases without taps: their zeros are
    filled at run time, not stored as output-sized constants in the artifact."""
    from wasm_build.compiler.passes import subpixel_convs
    from wasm_build.frontends.onnx import load_onnx

    path = tmp_path / "model.onnx"
    path.write_bytes(_model(Decoder(DECONVS["k1s2"]), size=24).SerializeToString())
    mod = subpixel_convs.subpixel_convs_pass()(relax.transform.FoldConstant()(load_onnx(path, {}).module))
    largest = []

    def visit(expr):
        if isinstance(expr, tvm.ir.expr.Constant) and hasattr(expr.value, "numpy"):  # a tensor constant
            largest.append(expr.value.numpy().size)

    relax.analysis.post_order_visit(mod["main"], visit)
    assert max(largest) <= 8 * 3 * 3 * 3  # the first conv's weights, the largest the model has


def test_nhwc_pass_keeps_transposed_convs_in_nchw():
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(_model(Decoder(DECONVS["k2s2"])))
    mod = nhwc_conv.nhwc_conv_pass()(mod)
    layouts = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name.startswith("relax.nn.conv2d"):
            layouts.append((expr.op.name, str(expr.attrs.data_layout)))

    relax.analysis.post_order_visit(mod["main"], visit)
    assert sorted(layouts) == [("relax.nn.conv2d", "NHWC"), ("relax.nn.conv2d", "NHWC"), ("relax.nn.conv2d_transpose", "NCHW")]
