"""Graph passes: Relax-level choices of layout and algorithm, one pass per module, run before
legalization (see `compiler.pipeline.legalize_passes`); the schedules rely on them.

* `clamped_gathers`: gathers of indices computed at run time clamp them to the table;
* `scalar_clamp`: Clip's TE kernels back to Relax ``maximum``/``minimum`` (they then follow
  the conv layout and fuse);
* `conv1d_planes`: 1-D convs as 2-D convs over planes one row high;
* `subpixel_convs`: transposed convs as one ordinary conv per output phase, interleaved;
* `padding_taps`: kernel taps that only ever read padding dropped (dilated convs on small maps,
  float or integer);
* `nhwc_conv`: convs in NHWC activations with HWIO weights;
* `fold_conv_affine`: per-channel affine epilogues (batch norm) folded into conv weights and bias;
* `lookup_tables`: elementwise chains from one 8-bit tensor to another (a quantized model's
  activations and their requantizes) as 256-entry tables made at build time;
* `bilinear_sums`: linear resizes as four weighted taps summed in onnxruntime's order (its
  rounding ties, which quantized models turn into whole steps);
* `winograd`: stride-1 3x3 convs as Winograd F(2x2, 3x3) / F(4x4, 3x3) within a weight budget;
* `relaxed_products` (only with relaxed SIMD): the integer convs and matmuls left, where their
  weights are 7-bit, on ``i32x4.relaxed_dot_i8x16_i7x16_add_s``;
* `pixel_rows`: 1x1 convs on planes whose pixel count is not a multiple of 4, over padded rows;
* `patch_rows`: other convs with a window or a stride, as products over their patches;
* `paired_taps`: integer depthwise convs over pairs of window taps, for ``i32x4.dot_i16x8_s``;
* `window_rows`: integer convs over few input channels (stems) as products along the window's
  rows, widened to int16 once;
* `grouped_products`: grouped convs (integer, or float of 8+ channels a group) as products over a
  group axis of their own;
* `vector_math`: exp/erf/log/sigmoid/tanh/softmax as vectorizable polynomial kernels.

`epilogue_transposes` runs later, after legalization and before fusion: a transpose of a
contraction's output is fused into it, which then stores its tiles transposed.

`static_slices` runs earlier, first of `compiler.pipeline.optimize_passes`: it gives dynamic
slices with bounds known at build time (ShuffleNet's channel split) static shapes, which
FoldConstant and legalization need; `shape_arith` evaluates those bounds.

Quantized models first go through `quantized_passes` (before the first ``FoldConstant``, which
would fold dequantized weights into float32 constants):

* `requant_identities`: ``quantize(op(dequantize(x)))`` with equal parameters -> ``op(x)`` for
  reshapes, transposes, max pooling and concatenations (a concatenation's inputs with other
  parameters each requantized to the output's first);
* `integer_contractions`: QDQ convs, matmuls and Gemms, and ``MatMulInteger``, as int8 x int8
  -> int32 products with a requantize epilogue;
* `qdq_arithmetic`: the remaining quantize/dequantize calls as elementwise arithmetic that
  follows the convs' layout.

`conv_rewrite` holds what the three conv rewrites share, `qdq` what the quantization passes
share; `analysis` small module queries.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..init_kernels import fold_constants
from ..irmodule import op_calls
from .analysis import calls_op
from .bilinear_sums import bilinear_sums_pass
from .clamped_gathers import clamped_gathers_pass
from .conv1d_planes import conv1d_planes_pass
from .epilogue_transposes import epilogue_transposes_pass
from .grouped_products import grouped_products_pass
from .fold_conv_affine import fold_conv_affine_pass
from .integer_contractions import integer_contractions_pass
from .lookup_tables import lookup_tables_pass
from .nhwc_conv import nhwc_conv_pass
from .padding_taps import padding_taps_pass
from .paired_taps import paired_taps_pass
from .patch_rows import patch_rows_pass
from .pixel_rows import pixel_rows_pass
from .qdq_arithmetic import qdq_arithmetic_pass
from .relaxed_products import relaxed_products_pass
from .requant_identities import requant_identities_pass
from .scalar_clamp import scalar_clamp_pass
from .static_slices import static_slices_pass
from .subpixel_convs import subpixel_convs_pass
from .vector_math import vector_math_pass
from .window_rows import window_rows_pass
from .winograd import winograd_pass


def graph_passes(target: tvm.target.Target, winograd_budget: float = 0.0) -> list[tvm.transform.Pass]:
    """The graph passes for ``target`` (llvm only), in order, with the folding between them."""
    if target.kind.name != "llvm":
        return []
    # The relaxed dot product only where the module may use relaxed SIMD (it then needs a host
    # that has it), on the integer products Winograd leaves (its 2.25x fewer multiply-adds beat
    # the relaxed dot's 1.5-2x faster ones).
    relaxed = [relaxed_products_pass(), relax.transform.DeadCodeElimination()] if "+relaxed-simd" in list(target.attrs.get("mattr") or []) else []
    return [
        clamped_gathers_pass(),
        scalar_clamp_pass(),
        conv1d_planes_pass(),
        subpixel_convs_pass(),
        padding_taps_pass(),
        nhwc_conv_pass(),
        # Folds the transposed weights and resolves the batch-norm tuple's `[0]`,
        # so the next pass sees conv -> add/mul chains and FuseOps conv -> add -> relu.
        fold_constants(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.DeadCodeElimination(),  # the dead tuple still counts as a use
        fold_conv_affine_pass(),
        relax.transform.DeadCodeElimination(),
        lookup_tables_pass(),
        bilinear_sums_pass(),
        winograd_pass(budget=winograd_budget),
        *relaxed,
        pixel_rows_pass(),
        patch_rows_pass(),
        paired_taps_pass(),
        window_rows_pass(),
        grouped_products_pass(),
        vector_math_pass(),
        fold_constants(),  # leaves the kernels that run at init (Winograd's filter transforms)
    ]


def quantized_passes() -> tvm.transform.Pass:
    """The quantization passes, as one pass that leaves modules without quantized operators
    untouched (the very same object: float models compile exactly as before)."""
    steps = tvm.transform.Sequential(
        [
            requant_identities_pass(),
            integer_contractions_pass(),
            relax.transform.DeadCodeElimination(),  # float reconstructions nothing reads
            qdq_arithmetic_pass(),
        ]
    )

    @tvm.transform.module_pass(opt_level=0, name="WasmQuantized")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if not any(calls_op(mod, op) for op in ("relax.quantize", "relax.dequantize")) and not _integer_matmuls(mod):
            return mod
        return steps(mod)

    return _pass


def _integer_matmuls(mod: tvm.IRModule) -> bool:
    """Whether ``mod`` has an int32 matmul (ONNX MatMulInteger's import)."""
    return bool(op_calls(mod, lambda call: call.op.name == "relax.matmul" and str(call.attrs.out_dtype) == "int32"))


__all__ = ["epilogue_transposes_pass", "graph_passes", "quantized_passes", "static_slices_pass"]
