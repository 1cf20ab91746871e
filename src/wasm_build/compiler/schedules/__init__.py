"""wasm-build's default CPU schedules for fused TIR kernels, for 128-bit SIMD.

The default Relax pipeline leaves every kernel a naive loop nest. The pass made by
:func:`default_schedule_pass` runs right after ``FuseTIR`` and tries the rules of
``RULES``, in this order, on each root block of each PrimFunc (one module per rule):

* ``winograd_transforms`` -- Winograd's input and output transforms, per tile position
  and channel vector, coefficients unrolled to constants;
* ``inline_producers`` -- a spatial producer inlined into its only consumer;
* ``integer_contraction`` -- integer products (int8 convs and matmuls) on dot-product
  intrinsics (`dot_products`), depthwise ones over pairs of taps too (their activations
  loaded per lane), others on the contraction's lane-wise tile;
* ``contraction`` -- a reduction whose output's innermost index is spatial (matmuls,
  convs, pooling windows): a register tile of ``rows x lanes`` accumulators, reduction
  loops outside it, epilogues fused into its write-back (`tile_shape` picks the tile,
  `pixel_axes` lets 4 pixels be its rows, `packing` lays out its operands);
* ``row_reduction`` -- a reduction over the innermost contiguous axis (softmax, layer
  norm, global pooling): vector partial sums via rfactor;
* ``concat_segments`` -- a concatenation of many inputs as one vectorized copy loop per input;
* ``transpose_tiles`` -- a transpose moving the innermost axis (NCHW <-> NHWC) in 4 x 4
  blocks of vectors, transposed by lane shuffles (the partial last block of rows that are not
  whole vectors split off and copied value by value);
* ``spatial`` -- the remaining injective loop nests, innermost axis vectorized.

A rule works on a copy of the schedule and is abandoned on any error (`rule.attempt`), so
a kernel is either rescheduled by verified schedule primitives or left as is. Weights the
contraction rule reads packed are repacked at compile time (`packed_weights`). Shared
block analysis is in `analysis`; the graph passes in `compiler.passes` make the layout and
algorithm choices these rules rely on.
"""

from __future__ import annotations

import logging

import tvm
import tvm.script
from tvm import s_tir, tirx

from ..irmodule import with_functions
from ..tiles import LAYOUT_FREE_ATTR, PACKED_ROWS_ATTR, PARTITIONED_ATTR, PRESPLAT_PAIRS_ATTR, SCHEDULED_ATTR, TRANSPOSED_BLOCKS_ATTR
from .analysis import all_blocks, root_blocks
from .concat_segments import ConcatSegments
from .contraction import Contraction
from .dot_products import tensorize_marked
from .inline_producers import InlineProducers
from .integer_contraction import IntegerContraction
from .packed_weights import constant_params, fold_packed_constants
from .row_reduction import RowReduction
from .rule import Rule, attempt
from .spatial import VectorizeSpatial
from .transpose_tiles import TransposeTiles
from .winograd_transforms import WinogradTransforms

logger = logging.getLogger(__name__)

# Revision of the default schedules' output. Tuning databases record the revision their
# records were compared with (see wasm_build.tuning): bump it when a change makes default
# kernels faster or slower, so that builds stop applying records that beat an older default.
SCHEDULES_REVISION = 27

RULES: tuple[Rule, ...] = (
    WinogradTransforms(),
    InlineProducers(),
    IntegerContraction(),
    Contraction(),
    RowReduction(),
    ConcatSegments(),
    TransposeTiles(),
    VectorizeSpatial(),
)


def default_schedule_pass(target: tvm.target.Target) -> tvm.transform.Pass:
    """Module pass over an IRModule containing Relax + fused TIR PrimFuncs (right after
    relax.transform.FuseTIR), returning the module with every PrimFunc it knows how to
    speed up rescheduled for 128-bit SIMD (4 x f32 lanes), others left untouched. Constant
    weights that a rescheduled kernel reads packed are repacked in the Relax functions too
    (folded into new constants), so the returned module's callers change as well."""

    @tvm.transform.module_pass(opt_level=0, name="WasmDefaultSchedule")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if target.kind.name != "llvm":
            return mod
        constants = constant_params(mod)
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or _is_scheduled(func):
                continue
            if constants.get(gvar):
                func = func.with_attr(LAYOUT_FREE_ATTR, sorted(constants[gvar]))
            scheduled = schedule_prim_func(func)
            if scheduled is not None:
                updates[gvar] = scheduled
        if not updates:
            return mod
        return fold_packed_constants(with_functions(mod, updates))

    return _pass


def schedule_prim_func(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """Return ``func`` rescheduled, or None when no rule applied."""
    sch = s_tir.Schedule(func)
    changed = False
    for rule in RULES:
        for name in [sch.get(b).name_hint for b in root_blocks(sch)]:
            result = attempt(sch, rule, name)
            if result is not None:
                sch, changed = result, True
    if not changed:
        return None
    tensorize_marked(sch)  # after every rule: a tensorized schedule cannot be copied
    func = sch.mod["main"].with_attr(SCHEDULED_ATTR, True)
    # Buffers the TIR steps after lowering rewrite: annotated on blocks, kept on the PrimFunc.
    annotations = [sch.get(block).annotations for block in all_blocks(sch)]
    for attr in (PACKED_ROWS_ATTR, PRESPLAT_PAIRS_ATTR, TRANSPOSED_BLOCKS_ATTR):
        names = [a[attr] for a in annotations if attr in a]
        if names:
            func = func.with_attr(attr, names)
    if any(PARTITIONED_ATTR in a for a in annotations):
        func = _with_own_block_iterators(func)
    return func


def _with_own_block_iterators(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` with each block's iterators variables of its own. ``loop_partition`` copies a
    block with the same iterator variables, which TVM's well-formedness check refuses when a
    schedule is made of the function again (tuning does); printed and parsed back, every block
    declares its own. Should the round trip fail, the function is kept: it compiles as it is."""
    try:
        return tvm.script.from_source(func.script())
    except Exception as err:  # pylint: disable=broad-except
        logger.debug("partitioned kernel kept with shared block iterators: %s", err)
        return func


def _is_scheduled(func: tirx.PrimFunc) -> bool:
    return func.attrs is not None and bool(func.attrs.get(SCHEDULED_ATTR, False))
