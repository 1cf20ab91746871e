"""Rule: integer products (int8, uint8 or int16 activations x constant int8 weights -> int32:
the convs and matmuls of `compiler.passes.integer_contractions`; int16 weights: Winograd's,
`compiler.passes.winograd`; uint8 weights in [0, 127] times int8 activations:
`compiler.passes.relaxed_products`, on the relaxed dot product; int16 x int16 activations:
attention's products in a statically quantized transformer, `compiler.passes.integer_contractions`)
on dot-product intrinsics.

The float contraction's register tile, with the reduction's innermost ``depth`` steps inside
each intrinsic: a tile of ``rows x 4 * vectors`` int32 accumulators, where every step of the
reduction splats ``depth`` consecutive activations of a row (its innermost, contiguous axis)
and loads ``depth`` weights of 4 channels at once. The weights are repacked at compile time,
lane tile by lane tile, as ``W[channel // tile, ..., k // depth, channel % tile, k % depth]``:
one contiguous stream per tile (an activation in the weights' place, attention's keys or values, is
repacked so by the kernel at every call). Requantize epilogues are fused into the tile's write-back.
int16 rows (the dense products' activations) are copied and stored pre-splat
(`compiler.tir.presplat_pairs`): each step then loads a row's broadcast pair as one vector. The
copy is made per row tile (`_presplat_rows`) where the rows are consecutive and every lane tile
reuses it, else once per call (`_presplat_whole`: 3 x 3 convs' windows, lane tiles swept over
every row) where its cost is shared by enough products.
Rows that do not come in whole tiles (197 tokens) are padded to them (`edge_padding.pad_rows`).

Depthwise convs over pairs of taps (`passes.paired_taps`) read activations of their own per
channel, ``A[..., n, k]``: the same tile, with one vector load per accumulator and step where
others splat one per row (`dot_products.LANEWISE_DOT`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import SBlockRV, ScheduleError

from ..tiles import CACHE_BYTES, LAYOUT_FREE_ATTR, PRESPLAT_PAIRS_ATTR
from ..tir import pair_shuffle, presplat_pairs
from .analysis import (
    block_realize,
    extent,
    has_broadcast_operand,
    has_trivial_binding,
    indexed_dims,
    is_one,
    iter_index,
    iter_kinds,
    steps_by_one,
    uses,
)
from .contraction import Contraction, fuse_epilogues, vectorize_tile
from .dot_products import LANES, LANEWISE_DOT, TENSORIZE_ATTR, DotProduct, dot_product
from .edge_padding import can_pad, cheap_padding, pad_reduction, pad_rows
from .packing import compute_rows_in_copy, copy_at
from .rule import Rule
from .tile_shape import TileShape, streamed_bytes

# Registers a tile may hold (x86 has 16 xmm registers for wasm's v128): the accumulators, one
# weight vector per lane vector and the row's splat activations. Past 16, Cranelift spills
# accumulators inside the reduction loop (a 3 x 16-lane tile ran 20x slower than 3 x 12).
_REGISTERS = 14
# x86 instructions Cranelift emits per reduction step (wasmtime 51, disassembled): the loop's
# control; per row the activations' splat (address, scalar load, move, broadcast; one more to
# widen 8-bit pairs); per lane vector a widening weight load and its address; per accumulator
# the intrinsic and its add. Reduction steps run at about 4 instructions a cycle.
_STEP_COST = 4
_SPLAT_COST = {"int16": 4, "int8": 5, "uint8": 5}
# ... and four int8 activations for the relaxed dot product, one `v128.load32_splat`.
_QUAD_SPLAT_COST = 4
# ... and int16 pairs in groups of four steps (`PAIR_GROUP`): a quarter of a load and a shuffle.
_GROUPED_SPLAT_COST = 1.5
# ... and lane-wise activations, a vector load (its address and the load) per accumulator.
_LANEWISE_LOAD_COST = 2
# ... and int16 pairs stored pre-splat (`_presplat_rows`): one vector load per row. Measured in
# C micro-kernels in wasmtime over four 1x1 convs' shapes (G int8 multiply-adds a second):
# 4 x 8 38-41, 5 x 8 35-40, 3 x 12 36-39, 2 x 16 34-37, 6 x 8 (15 registers) 32-35, 7 x 4
# 32-35 (a load per row for one vector of products), 7 x 8 (17 registers) 29-31, where
# 2 x 16 tiles splatting their pairs ran 26-30. Pre-splat tiles take two lane vectors or
# more and at most 11 registers: 4 x 8 where the lanes allow (with 13, a 49-pixel plane took
# 5 x 8 tiles over 55 rows, where `pixel_rows` pads it to 52 for 4 x 8).
_PRESPLAT_COST = 1
_PRESPLAT_REGISTERS = 11
_PRESPLAT_VECTORS = 2
# ... where the copy is made once per call (`_presplat_whole`), its instructions per pair (a
# load, the broadcast, a store, its padding's select and address), shared by every broadcast of
# the pair. A 1x1 conv of stride 2 (64 -> 128 channels on 56 x 56) copies four times the
# pixels it reads: pre-splat, its kernel ran 15% slower. Such copies take one-vector tiles too
# (the lane tiles of 512-channel 3x3 convs on 7 x 7 sweep every row, 7 x 4 lanes: 27 -> 32 G
# int8 multiply-adds a second, pre-splat).
_WHOLE_COPY_COST = 6
# ... and at most this many bytes (8 a value: int16, four copies), so a kernel's workspace stays
# near its activations' size (ResNet-18's largest: 1.7 MB; a 512-token BERT-base layer's: 3 MB).
_WHOLE_COPY_BYTES = 4 << 20
_VECTOR_COST = 2
_ROWS = (1, 2, 3, 4, 5, 6, 7)
# Reduction steps unrolled together over int16 activations: the pairs of one v128, which
# `tir.pair_shuffle` loads once.
PAIR_GROUP = pair_shuffle.GROUP // 2
# Output pixels of a lane-wise (depthwise) tile.
_LANEWISE_ROWS = 2
_VECTORS = (1, 2, 3, 4, 6, 8)


@dataclass(frozen=True)
class IntegerProduct:
    """``C[...] += int32(A[..., k]) * int32(W[..., k, ..., n])`` with W a constant parameter,
    or an int16 one computed at run time (``repacked``)."""

    activation: tirx.Buffer
    weight: tirx.Buffer
    lane: int  # block iterator of the output channel n (the output's innermost index)
    depth: int  # block iterator of k (the activation's innermost index)
    activation_dtype: str
    # Activations of their own per channel, ``A[..., n, k]`` (`passes.paired_taps`), loaded as
    # vectors like the weights; otherwise ``A[..., k]``, splat across the lanes.
    lanewise: bool = False
    # int8, int16 (Winograd's transformed weights, `passes.winograd`) or uint8 in [0, 127]
    # (`passes.relaxed_products`: the relaxed dot product's weights).
    weight_dtype: str = "int8"
    # W an activation (attention's keys or values, `passes.integer_contractions`), packed by the
    # kernel at every call where constant weights are packed at compile time.
    repacked: bool = False


@dataclass(frozen=True)
class _Tile:
    rows: int
    row_axis: int | None
    vectors: int  # lane vectors of 4 channels
    intrinsic: DotProduct
    grouped: bool  # reduction steps unrolled by `PAIR_GROUP` (int16 pairs splat by shuffles)
    # int16 activation pairs copied and stored pre-splat: per row tile (`_presplat_rows`), or
    # once per call (`_presplat_whole`) when ``copied_once``
    presplat: bool = False
    copied_once: bool = False

    @property
    def lanes(self) -> int:
        return LANES * self.vectors


class IntegerContraction(Rule):
    """Register-tiled integer products, the innermost reduction steps in one instruction.

    Loop order: outer spatial, row tile, lane tile (lane tiles outermost above
    `tiles.CACHE_BYTES` of weights), other reduction loops, reduction steps of ``depth``,
    rows, lane vectors, then the intrinsic's 4 lanes x ``depth`` products.
    """

    name = "integer_contraction"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        product = integer_product(sch, block)
        if product is None:
            # Depthwise convs: every operand moves with the channels, no dot product to take;
            # the float contraction's lane-wise tile, its products widened by LLVM.
            return _LanewiseTile().apply(sch, block)
        if product.repacked and extent(sch, sch.get_loops(block)[product.depth]) % 2:
            # An odd reduction of two activations (scores x V over 79 keys): padded to pairs
            # here, where its zero column padded in the graph was fused into the softmax.
            block = pad_reduction(sch, block, product.depth, 2)
            product = None if block is None else integer_product(sch, block)  # reading the padded copies
            if product is None:
                return False
        tile = _choose_tile(sch, block, product)
        if tile is None:
            return False
        crop = None
        if tile.row_axis is not None and extent(sch, sch.get_loops(block)[tile.row_axis]) % tile.rows:
            name = sch.get(block).name_hint
            crop = pad_rows(sch, block, tile.row_axis, tile.rows)
            block = sch.get_sblock(name)
            product = integer_product(sch, block)  # reading the padded activations now
            if crop is None or product is None:
                return False
        stmt = sch.get(block)
        kinds = iter_kinds(sch, block)
        loops = sch.get_loops(block)
        lane_o, lane_v, lane_i = sch.split(loops[product.lane], [None, tile.vectors, LANES])
        # int16 pairs: four steps in a row read one aligned group of 8 values, which
        # `tir.pair_shuffle` loads once and splats by lane shuffles.
        group = PAIR_GROUP if tile.grouped else 1
        k_o, k_group, k_i = sch.split(loops[product.depth], [None, group, tile.intrinsic.depth])
        row_o, row_i = [], []
        if tile.row_axis is not None:
            outer_row, inner_row = sch.split(loops[tile.row_axis], [None, tile.rows])
            row_o, row_i = [outer_row], [inner_row]
        spatial_axes = [i for i, k in enumerate(kinds) if k == "S" and i not in (product.lane, tile.row_axis)]
        spatial = [loops[i] for i in spatial_axes]
        reductions = [loops[i] for i, k in enumerate(kinds) if k == "R" and i != product.depth]
        outer_spatial = []  # iterators of the spatial loops outside the lane tiles
        if _lane_tiles_outermost(stmt, product):
            tile_loops = [lane_o, *spatial, *row_o]
        else:
            tile_loops = [*spatial, *row_o, lane_o]
            outer_spatial = [stmt.iter_vars[i].var for i in spatial_axes]
        sch.reorder(*tile_loops, *reductions, k_o, k_group, *row_i, lane_v, lane_i, k_i)

        write_back = sch.cache_write(block, 0, "global")
        if crop is not None:
            # The crop writes the tile back: real rows only, never the padding.
            sch.compute_inline(write_back)
            write_back = crop
        fuse_epilogues(sch, write_back)
        sch.reverse_compute_at(write_back, tile_loops[-1])
        init = sch.decompose_reduction(block, (reductions or [k_o])[0])
        vectorize_tile(sch, init, len(tile_loops))
        _split_lanes(sch, write_back, tile.lanes)
        vectorize_tile(sch, write_back, len(tile_loops))
        _pack_weights(sch, block, product, tile, outer_spatial)
        if tile.copied_once:
            _presplat_whole(sch, block, product)
        elif tile.presplat:
            _presplat_rows(sch, block, product, tile, row_o[0])
        # Tensorized once every rule has run (`dot_products.tensorize_marked`): a schedule
        # cannot be copied after `tensorize`, and each rule works on a copy.
        sch.annotate(sch.blockize(lane_i), TENSORIZE_ATTR, tile.intrinsic.name)
        for loop in (k_group, *row_i, lane_v):
            sch.unroll(loop)
        return True


def integer_product(sch: s_tir.Schedule, block: SBlockRV) -> IntegerProduct | None:
    """The block as an `IntegerProduct`, or None when it is not one."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    spatial = len(kinds) - len(kinds.lstrip("S"))
    if kinds[spatial:] != "R" * (len(kinds) - spatial) or spatial in (0, len(kinds)) or not has_trivial_binding(sch, block):
        return None
    if len(stmt.writes) != 1 or stmt.writes[0].source.dtype != "int32" or len(stmt.reads) < 2:
        return None
    loads = _product_loads(stmt)
    if loads is None:
        return None
    func = sch.mod["main"]
    constant = _param_buffers(func, LAYOUT_FREE_ATTR)
    lane = stmt.writes[0].region[-1].min
    lane_index = iter_index(stmt, lane) if isinstance(lane, tirx.Var) else None
    if lane_index is None or kinds[lane_index] != "S":
        return None
    for weight, activation in (loads, loads[::-1]):
        if weight.source.dtype not in ("int8", "int16", "uint8"):
            continue
        repacked = not any(weight.source.same_as(b) for b in constant)
        if repacked and (weight.source.dtype, activation.source.dtype) != ("int16", "int16"):
            continue
        if activation.source.dtype not in ("int8", "uint8", "int16"):
            continue
        if weight.source.dtype == "uint8" and activation.source.dtype != "int8":
            continue  # uint8 weights are `passes.relaxed_products`' (int8 activations)
        if not (len(weight.indices) >= 2 and weight.indices[-1].same_as(lane)):
            continue
        depth_var = activation.indices[-1]
        depth_index = iter_index(stmt, depth_var) if isinstance(depth_var, tirx.Var) else None
        if depth_index is None or kinds[depth_index] != "R":
            continue
        lanewise = _uses(activation.indices, lane)
        if lanewise and not (_lanewise_activation(activation, lane) and weight.source.dtype == "int8"):
            continue
        if not any(index.same_as(depth_var) for index in weight.indices[:-1]):
            continue
        return IntegerProduct(
            activation=activation.source,
            weight=weight.source,
            lane=lane_index,
            depth=depth_index,
            activation_dtype=str(activation.source.dtype),
            lanewise=lanewise,
            weight_dtype=str(weight.source.dtype),
            repacked=repacked,
        )
    return None


def _lanewise_activation(activation: tvm.ir.TensorLoad, lane: tirx.Var) -> bool:
    """``A[..., n, k]`` in int16 with no other use of the lane: 4 lanes' pairs are one v128."""
    indices = activation.indices
    return (
        str(activation.source.dtype) == "int16"
        and len(indices) >= 2
        and indices[-2].same_as(lane)
        and not _uses(indices[:-2], lane)
    )


class _LanewiseTile(Contraction):
    """The float contraction's tile on lane-wise integer reductions, 16 channels wide."""

    name = "integer_contraction"

    def accepts(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        return _is_lanewise_integer_reduction(sch, block)

    def adjust(self, shape: TileShape) -> TileShape | None:
        return _lanewise_tile(shape)


def _is_lanewise_integer_reduction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    spatial = len(kinds) - len(kinds.lstrip("S"))
    if kinds[spatial:] != "R" * (len(kinds) - spatial) or spatial in (0, len(kinds)) or not has_trivial_binding(sch, block):
        return False
    body = stmt.body
    if len(stmt.writes) != 1 or stmt.writes[0].source.dtype != "int32" or not isinstance(body, tirx.BufferStore):
        return False
    if not (isinstance(body.value, tirx.Add) and isinstance(body.value.a, tvm.ir.TensorLoad) and body.value.a.source.same_as(body.buffer)):
        return False
    lane = stmt.writes[0].region[-1].min
    return isinstance(lane, tirx.Var) and not has_broadcast_operand(stmt, lane)


def _lanewise_tile(shape: TileShape) -> TileShape | None:
    """A lane-wise integer tile spans 16 channels, one 16-byte load of 8-bit activations and
    weights per tap (the float tile's 4 lanes would load 4 bytes at a time), over
    `_LANEWISE_ROWS` output pixels sharing each tap's weights."""
    lanes = next((n for n in (16, 8) if shape.lane_extent % n == 0), None)
    if lanes is None:
        return None
    if shape.row_axis is not None and shape.rows % _LANEWISE_ROWS == 0:
        return replace(shape, lane_tile=lanes, rows=_LANEWISE_ROWS, row_operand=None, lane_block=1)
    return replace(shape, lane_tile=lanes, rows=1, row_axis=None, row_operand=None, lane_block=1)


def _product_loads(stmt: tirx.SBlock):
    """The two loads of a body ``C[i] = C[i] + int32(X[...]) * int32(Y[...])``, else None."""
    body = stmt.body
    if not isinstance(body, tirx.BufferStore) or not isinstance(body.value, tirx.Add):
        return None
    total, term = body.value.a, body.value.b
    if not (isinstance(total, tvm.ir.TensorLoad) and total.source.same_as(body.buffer) and isinstance(term, tirx.Mul)):
        return None
    loads = []
    for factor in (term.a, term.b):
        if not (isinstance(factor, tirx.Cast) and str(factor.ty) == "int32" and isinstance(factor.value, tvm.ir.TensorLoad)):
            return None
        loads.append(factor.value)
    return loads[0], loads[1]


def _param_buffers(func: tirx.PrimFunc, attr: str) -> list[tirx.Buffer]:
    indices = func.attrs.get(attr) if func.attrs is not None else None
    return [func.params[int(i)] for i in indices or []]


def _read_index(stmt: tirx.SBlock, buffer: tirx.Buffer) -> int:
    """Where ``buffer`` is among the block's reads now (decomposing the reduction adds one)."""
    return next(i for i, region in enumerate(stmt.reads) if region.source.same_as(buffer))


def _uses(indices, var) -> bool:
    return uses([collect_vars_used_in_prim_expr(index) for index in indices], var)


def _choose_tile(sch: s_tir.Schedule, block: SBlockRV, product: IntegerProduct) -> _Tile | None:
    """Rows and lane vectors giving the most multiply-adds per instruction within the registers
    (instructions per reduction step: see `_STEP_COST`). Row tiles that do not divide the rows
    are taken where padding the rows to them is possible and cheap (the padding counts as work).
    """
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    extents = [extent(sch, loop) for loop in loops]
    intrinsic = LANEWISE_DOT if product.lanewise else dot_product(product.activation_dtype, product.weight_dtype)
    if intrinsic is None or extents[product.lane] % LANES or extents[product.depth] % intrinsic.depth:
        return None
    kinds = iter_kinds(sch, block)
    weight = stmt.reads[_read_index(stmt, product.weight)]
    candidates = [
        i for i, kind in enumerate(kinds)
        if kind == "S" and i != product.lane and not any(_uses([r.min], stmt.iter_vars[i].var) for r in weight.region)
    ]
    row_axis = max(candidates, default=None)  # the innermost: a conv's output columns, a matmul's rows
    grouped = (
        not product.lanewise
        and product.activation_dtype == "int16"
        and extents[product.depth] % (PAIR_GROUP * intrinsic.depth) == 0
    )
    if grouped:
        splat = _GROUPED_SPLAT_COST
    else:
        splat = _QUAD_SPLAT_COST if intrinsic.depth == 4 else _SPLAT_COST[product.activation_dtype]
    # Pre-splat pairs: dot_i16x8 over int16 rows (copied per row tile where the rows are
    # consecutive in one dimension and row tiles run outside lane tiles, else once per call).
    presplat = (
        not product.lanewise
        and intrinsic.depth == 2
        and product.activation_dtype == "int16"
        and product.weight_dtype == "int8"  # (int16 weights, Winograd's, load unwidened: it ran slower)
        and row_axis is not None
    )
    # A copy made once per call: its instructions shared by the broadcasts, one per row, pair
    # and lane tile (fewer the wider the lane tile).
    whole_copy = presplat and not _copied_per_row_tile(stmt, product, row_axis)
    copy_share = _whole_copy_share(product, extents) if whole_copy else 0.0
    if copy_share is None:
        presplat = whole_copy = False
    paddable = can_pad(stmt)
    best = None
    for rows in _ROWS:
        if row_axis is None and rows > 1:
            continue
        if row_axis is not None and extents[row_axis] % rows and not (paddable and cheap_padding(extents[row_axis], rows)):
            continue
        used = 1.0 if row_axis is None else extents[row_axis] / (-(-extents[row_axis] // rows) * rows)
        for vectors in _VECTORS:
            if (extents[product.lane] // LANES) % vectors:
                continue
            # (row splat cost, registers, pre-splat) of each way to broadcast the rows' pairs
            ways = [(splat, _REGISTERS, False)]
            if presplat and rows > 1 and (vectors >= _PRESPLAT_VECTORS or whole_copy):
                ways.append((_PRESPLAT_COST + copy_share * vectors, _PRESPLAT_REGISTERS, True))
            for row_splat, registers, presplat_rows in ways:
                if rows * vectors + vectors + 1 > registers:
                    continue
                if product.lanewise:  # a load per accumulator instead of a splat per row
                    activations = rows * vectors * _LANEWISE_LOAD_COST
                else:
                    activations = rows * row_splat
                instructions = _STEP_COST + activations + vectors * _VECTOR_COST + rows * vectors * intrinsic.instructions
                rate = rows * vectors * intrinsic.depth / instructions * used
                if best is None or rate > best[0]:
                    best = (rate, rows, vectors, presplat_rows)
    if best is None:
        return None
    _, rows, vectors, presplat_rows = best
    return _Tile(
        rows, row_axis if rows > 1 else None, vectors, intrinsic, grouped and not presplat_rows, presplat_rows,
        copied_once=presplat_rows and whole_copy,
    )


def _whole_copy_share(product: IntegerProduct, extents: list[int]) -> float | None:
    """A once-per-call pre-splat copy's instructions per broadcast of one lane vector (a row's
    pair, shared by every lane of the tile), or None where the copy would be too large."""
    shape = product.activation.shape
    if not all(isinstance(n, tirx.IntImm) for n in shape):
        return None
    values = math.prod(int(n) for n in shape)
    if values * 2 * presplat_pairs.COPIES > _WHOLE_COPY_BYTES:
        return None
    broadcasts = math.prod(extents) / (LANES * 2)  # one per row, pair and lane vector
    return _WHOLE_COPY_COST * (values / 2) / broadcasts


def _lane_tiles_outermost(stmt: tirx.SBlock, product: IntegerProduct) -> bool:
    """Whether lane tiles loop outside row tiles: weights past `tiles.CACHE_BYTES`, so that one
    lane tile's slice stays in cache for every row."""
    return streamed_bytes(stmt, stmt.iter_vars[product.lane].var) > CACHE_BYTES


def _row_dim(stmt: tirx.SBlock, product: IntegerProduct, row: tirx.Var) -> int | None:
    """The activation's dimension the tile rows index, when rows are consecutive in it (a
    matmul's rows, a 1x1 conv's output columns: ``row`` plus iterators of extent 1) and the
    reduction is its innermost; else None."""
    region = stmt.reads[_read_index(stmt, product.activation)].region
    dims = [d for d, r in enumerate(region) if _uses([r.min], row)]
    if len(dims) != 1 or dims[0] == len(region) - 1 or not steps_by_one(region[dims[0]].min, row):
        return None
    others = collect_vars_used_in_prim_expr(region[dims[0]].min)
    extents = {iv.var: iv.dom.extent for iv in stmt.iter_vars}
    if any(not var.same_as(row) and not is_one(extents.get(var, 0)) for var in others):
        return None
    return dims[0]


def _split_lanes(sch: s_tir.Schedule, write_back: SBlockRV, lanes: int) -> None:
    """Write a tile of 12 or 24 lanes back in vectors of 4 or 8: LLVM splits an accumulator
    array read as one 12- or 24-lane vector into scalars (SROA), and then every reduction step
    rebuilds its vectors lane by lane (a 3 x 12 tile ran 6x slower than a 2 x 16 one)."""
    if lanes & (lanes - 1):
        *_, last = sch.get_loops(write_back)
        sch.split(last, [None, lanes & -lanes])


def _copied_per_row_tile(stmt: tirx.SBlock, product: IntegerProduct, row_axis: int) -> bool:
    """Whether the pre-splat copy is made per row tile (`_presplat_rows`): rows consecutive in
    one dimension, row tiles outside lane tiles (so every lane tile reuses it)."""
    row = stmt.iter_vars[row_axis].var
    return not _lane_tiles_outermost(stmt, product) and _row_dim(stmt, product, row) is not None


def _presplat_whole(sch: s_tir.Schedule, block: SBlockRV, product: IntegerProduct) -> None:
    """Copy the int16 activations once per call, pair by pair, ``A[..., k]`` -> ``P[..., k // 2,
    k % 2]``, and name the copy for `compiler.tir.presplat_pairs`: where lane tiles sweep every row
    (a copy per row tile would be made again per lane tile) or rows step through the activation
    otherwise than one by one (a 3 x 3 conv's windows, a strided conv's columns)."""
    index = _read_index(sch.get(block), product.activation)
    pack = sch.cache_read(block, index, "global")
    sch.transform_layout(pack, ("write", 0), lambda *idx: (*idx[:-1], idx[-1] // 2, idx[-1] % 2))
    *_, step = sch.get_loops(pack)
    _, pair = sch.split(step, [None, 2])
    sch.vectorize(pair)
    for producer in sch.get_producers(pack):
        try:  # one pass over the activations where they are computed here (a conv's padding)
            sch.compute_inline(producer)
        except ScheduleError:
            pass
    sch.annotate(pack, PRESPLAT_PAIRS_ATTR, sch.get(pack).writes[0].source.name)


def _presplat_rows(sch: s_tir.Schedule, block: SBlockRV, product: IntegerProduct, tile: _Tile, row_loop) -> None:
    """Copy each row tile's int16 activations pair by pair, rows side by side:
    ``A[..., r, ..., k]`` -> ``P[..., r // rows, ..., k // 2, r % rows, k % 2]``, once per row tile
    (reused by every lane tile), and name the copy for `compiler.tir.presplat_pairs`, which stores
    each pair four times so a reduction step loads its broadcast as one vector."""
    stmt = sch.get(block)
    row_var = stmt.iter_vars[tile.row_axis].var
    row_dim = _row_dim(stmt, product, row_var)
    index = _read_index(stmt, product.activation)
    shape = stmt.reads[index].source.shape
    rows = tile.rows
    if row_dim is None or not isinstance(shape[row_dim], tirx.IntImm) or int(shape[row_dim]) % rows:
        return  # (padded rows read another buffer: checked again on the one read now)
    pack = sch.cache_read(block, index, "global")

    def packed(*idx):
        outer = [i // rows if d == row_dim else i for d, i in enumerate(idx[:-1])]
        return (*outer, idx[-1] // 2, idx[row_dim] % rows, idx[-1] % 2)

    sch.transform_layout(pack, ("write", 0), packed)
    copy_loops = copy_at(sch, pack, row_loop)
    values = block_realize(sch, pack).iter_values

    def loop_of(dim):
        return next((l for l in copy_loops if _uses([values[dim]], sch.get(l).loop_var)), None)

    row_copy, step = loop_of(row_dim), loop_of(len(values) - 1)
    if row_copy is None or step is None:
        return  # a plain copy: the pairs stay splat by `v128.load32_splat`
    step_o, step_i = sch.split(step, [None, 2])
    sch.reorder(step_o, row_copy, step_i)
    sch.unroll(row_copy)
    sch.vectorize(step_i)
    compute_rows_in_copy(sch, pack)
    sch.annotate(pack, PRESPLAT_PAIRS_ATTR, sch.get(pack).writes[0].source.name)


def _pack_weights(
    sch: s_tir.Schedule, block: SBlockRV, product: IntegerProduct, tile: _Tile, outer: list[tirx.Var]
) -> None:
    """``W[..., k, ..., n]`` -> ``W[n // tile, ..., k // depth, n % tile, k % depth]`` at compile time
    (a layout-rewrite block that `packed_weights.fold_packed_constants` applies to the constant).
    Weight dimensions indexed by ``outer`` (spatial loops outside the lane tiles: Winograd's tile
    positions) go first, ``W[e, n // tile, ...]``, as in `packing.pack_constant_operand`."""
    stmt = sch.get(block)
    index = _read_index(stmt, product.weight)
    region = stmt.reads[index]
    depth_var = stmt.iter_vars[product.depth].var
    k_dim = next(d for d, r in enumerate(region.region) if r.min.same_as(depth_var))
    lanes, depth = tile.lanes, tile.intrinsic.depth
    outer_dims = [d for d in indexed_dims(region, outer) if d not in (k_dim, len(region.region) - 1)]
    rewrite = sch.cache_read(block, index, "global")
    if not product.repacked:
        sch.annotate(rewrite, "meta_schedule.layout_rewrite_preproc", True)

    def packed(*idx):
        first = [idx[d] for d in outer_dims]
        others = [idx[d] for d in range(len(idx) - 1) if d != k_dim and d not in outer_dims]
        n, k = idx[-1], idx[k_dim]
        return (*first, n // lanes, *others, k // depth, n % lanes, k % depth)

    sch.transform_layout(block, ("read", index), packed)
