"""Convs in NHWC activations with HWIO weights: every conv's output channels are its innermost,
contiguous axis, so the contraction rule vectorizes over output channels (also in late layers
with 7x7 / 14x14 planes) and depthwise convs stream along channels. Weight transposes are
constants, folded at compile time; activations change layout once at the graph input and once
after the last conv. Transposed convs stay NCHW/IOHW: the only layout TVM legalizes them in
(left to follow the convs, they reached the executor as un-lowered `relax.nn.conv2d_transpose`)."""

from __future__ import annotations

import logging

import tvm
from tvm import relax

from .analysis import calls_op

logger = logging.getLogger(__name__)


def nhwc_conv_pass() -> tvm.transform.Pass:
    """ConvertLayout to NHWC/HWIO for modules with a conv2d; any module it cannot
    convert (ConvertLayout rejects some layouts of other ops) is left in NCHW."""
    convert = relax.transform.ConvertLayout(
        {"relax.nn.conv2d": ["NHWC", "HWIO"], "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]}
    )

    @tvm.transform.module_pass(opt_level=0, name="WasmNHWCConv")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if not calls_op(mod, "relax.nn.conv2d"):
            return mod
        try:
            return convert(mod)
        except Exception as err:  # pylint: disable=broad-except
            logger.debug("ConvertLayout to NHWC skipped: %s", err)
            return mod

    return _pass
