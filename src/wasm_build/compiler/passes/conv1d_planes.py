"""1-D convolutions as 2-D ones over planes one row high: ``conv1d(x, w)`` ->
``squeeze(conv2d(x[:, :, None], w[:, :, None]))``. The conv2d then takes the NHWC layout, the
fused epilogues and the SIMD schedules every 2-D conv gets (channels on the vector lanes, a
register tile of output positions), where TVM's conv1d kernel ran unvectorized at about a
tenth of the peak (TCNs, wav2vec2's and Whisper's feature encoders, 1-D U-Nets). Transposed
1-D convs become transposed 2-D convs the same way.

Runs first among the layout passes: `nhwc_conv` then converts the new conv2d calls."""

from __future__ import annotations

import tvm
from tvm import relax

from .conv_rewrite import conv_layouts, rewrite_calls, static_float32_shape

_PLANE_OPS = {"relax.nn.conv1d": ("NCW", "OIW"), "relax.nn.conv1d_transpose": ("NCW", "IOW")}


def _is_plane_candidate(call: relax.Call) -> bool:
    """A float32 conv1d / conv1d_transpose in the ONNX layouts (channels before the sequence)
    with static shapes; others are left to TVM."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name in _PLANE_OPS):
        return False
    data_layout, kernel_layout = _PLANE_OPS[call.op.name]
    if conv_layouts(call) != (data_layout, kernel_layout, data_layout):
        return False
    # Static float32 shapes: a symbolic length stays with TVM's kernel (and `symbolic_loops`).
    return static_float32_shape(call.args[0]) is not None and static_float32_shape(call) is not None


def _as_plane_conv(builder: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    attrs = call.attrs
    data = builder.emit(relax.op.expand_dims(call.args[0], axis=2))
    weight = call.args[1]
    if isinstance(weight, tvm.ir.expr.Constant):  # expanded now: `subpixel_convs` needs constant weights
        weight = relax.const(weight.value.numpy()[:, :, None])
    else:
        weight = builder.emit(relax.op.expand_dims(weight, axis=2))
    left, right = (int(p) for p in attrs.padding)
    common = {
        "strides": (1, int(attrs.strides[0])),
        "padding": (0, left, 0, right),
        "dilation": (1, int(attrs.dilation[0])),
        "groups": int(attrs.groups),
        "out_dtype": attrs.out_dtype,
    }
    if call.op.name == "relax.nn.conv1d":
        plane = relax.op.nn.conv2d(data, weight, data_layout="NCHW", kernel_layout="OIHW", **common)
    else:
        plane = relax.op.nn.conv2d_transpose(
            data, weight, output_padding=(0, int(attrs.output_padding[0])),
            data_layout="NCHW", kernel_layout="IOHW", **common,
        )
    return relax.op.squeeze(builder.emit(plane), axis=[2])


def conv1d_planes_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmConv1dPlanes")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(
            mod,
            lambda call: True if _is_plane_candidate(call) else None,
            lambda builder, call, _chosen: _as_plane_conv(builder, call),
        )

    return _pass
