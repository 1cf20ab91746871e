"""What graph passes, schedules and TIR passes agree on: the register tile's geometry and
the IR annotations one stage leaves for the next.

Graph passes (`compiler.passes`) shape convs for tiles of `PACKED_ROWS` rows and mark
rows they compute; the contraction rule (`compiler.schedules`) packs those rows and
names the packed buffers in `PACKED_ROWS_ATTR`; `compiler.tir.lane_shuffle` reads them.
"""

from __future__ import annotations

# Rows per packed group: the f32 lanes of one v128.
PACKED_ROWS = 4
# Block annotation of a tile's row operand computed in the kernel, to compute in its packed copy.
COMPUTED_ROWS_ATTR = "wasm_build.computed_rows"
# Block annotation of an operand's copy padded with zeros to whole tiles (`edge_padding`): for
# constant weights it becomes part of their packing, done at compile time.
PADDED_COPY_ATTR = "wasm_build.padded_copy"
# PrimFunc attribute listing the buffers the contraction rule packed (read by lane_shuffle).
PACKED_ROWS_ATTR = "wasm_build.packed_rows"
# PrimFunc attribute listing the buffers of int16 activation pairs an integer contraction packed
# per row tile (`schedules.integer_contraction`), stored pre-splat by `compiler.tir.presplat_pairs`.
PRESPLAT_PAIRS_ATTR = "wasm_build.presplat_pairs"
# Block annotation naming the input a transpose reads in 4 x 4 blocks (`transpose_tiles`), gathered
# into this PrimFunc attribute for `compiler.tir.transpose_shuffle`, which loads each block by rows
# and transposes it by shuffles.
TRANSPOSED_BLOCKS_ATTR = "wasm_build.transposed_blocks"
# Block annotation of a block `loop_partition` split off a copy of: TVM 0.27 gives the copy the
# same iterator variables, and the schedules give the function a fresh set (`schedules`).
PARTITIONED_ATTR = "wasm_build.partitioned"
# Block annotation naming a Winograd transform stage: "pad" (padded input), "rows" (first
# 1-D pass, computed inside the second), "cols" (second pass, drives the schedule).
WINOGRAD_STAGE_ATTR = "wasm_build.winograd"
# PrimFunc parameters bound to constants (TVM's name, read by SplitLayoutRewritePreproc).
LAYOUT_FREE_ATTR = "layout_free_buffers"
# Block annotation of a weight-packing copy (TVM's name, moved out by SplitLayoutRewritePreproc).
LAYOUT_REWRITE_PREPROC_ATTR = "meta_schedule.layout_rewrite_preproc"
# The attribute meta-schedule, dlight and wasm-build's default schedules all read.
SCHEDULED_ATTR = "tirx.is_scheduled"
# Above this many bytes of streamed operand, a contraction loops over lane tiles outermost
# (and graph passes leave convs direct whose patches would not fit either).
CACHE_BYTES = 1 << 20
