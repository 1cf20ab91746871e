"""Tensor intrinsics for integer dot products on wasm SIMD128, for ``Schedule.tensorize``.

Each intrinsic updates 4 int32 accumulators (one ``v128``, 4 output channels) with a short
dot product along the reduction: ``C[i] += sum(int32(A[k]) * int32(B[i, k]) for k < depth)``,
where ``A`` is ``depth`` consecutive activations of one output row (broadcast to every lane)
and ``B`` the weights packed ``[channel][k]`` (one contiguous load).

* ``i32x4.dot_i16x8_s`` (SIMD128, depth 2): the activation pair is splat by a 16-bit load
  and widened (``v128.load16_splat`` + ``i16x8.extend_low_i8x16_{s,u}``; int16 activations
  need neither: ``v128.load32_splat``); the weights widen in their load
  (``i16x8.load8x8_s``). One instruction for 8 multiply-adds, 16 G int8 MAC/s measured.
  int16 weights (Winograd's transformed weights, `compiler.passes.winograd`) load as they are.

* lane-wise (depthwise convs over pairs of taps, `compiler.passes.paired_taps`): the
  activations differ per lane too, ``A[i, k]``: 4 channels' int16 pairs, one ``v128.load``.

* ``i32x4.relaxed_dot_i8x16_i7x16_add_s`` (relaxed SIMD, depth 4): int8 activations, 4 of
  them splat by one ``v128.load32_splat``, times weights that lie in [0, 127] (the
  instruction's second operand: outside it x86 hosts saturate), stored as uint8, which only
  `compiler.passes.relaxed_products` makes, with those values. One instruction (three x86
  ones, ``pmaddubsw``, ``pmaddwd``, ``paddd``) for 16 multiply-adds, 34 G int8 MAC/s measured.

LLVM never forms these instructions from scalar code (auto-vectorized int8 products ran at
6 G MAC/s); the intrinsics name them through ``T.call_llvm_pure_intrin``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from .. import tvmscript
from .analysis import all_blocks

LANES = 4  # int32 accumulators per v128
# Block annotation naming the intrinsic a block is to be tensorized with (meta-schedule's
# name for it: its `RewriteTensorize` postprocessor reads the same annotation).
TENSORIZE_ATTR = "meta_schedule.auto_tensorize"


@dataclass(frozen=True)
class DotProduct:
    """A registered intrinsic: ``depth`` products of ``activation`` x ``weight`` per lane."""

    name: str
    activation: str
    depth: int
    weight: str = "int8"
    # x86 instructions Cranelift emits for one intrinsic and its accumulation.
    instructions: int = 2


def _description(activation: str, depth: int, weight: str):
    @tvmscript.prim_func(s_tir=True, activation=activation, depth=depth, weight=weight)
    def desc(
        A: T.Buffer((depth,), activation, offset_factor=1),
        B: T.Buffer((LANES, depth), weight, offset_factor=1),
        C: T.Buffer((LANES,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:LANES], A[0:depth], B[0:LANES, 0:depth])
            T.writes(C[0:LANES])
            for i, k in T.grid(LANES, depth):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


def _pairs_splat(activation: str):
    """The activation pair ``A[0:2]`` as int16 lanes ``[a0, a1, a0, a1, ...]``."""
    if activation == "int16":
        return lambda A: T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int16x2"), dtype="int32"), 4), dtype="int16x8")
    byte = activation  # int8 / uint8: a 16-bit splat, low 8 bytes widened (sign or zero)
    half = "int16" if activation == "int8" else "uint16"
    return lambda A: T.cast(
        T.vectorlow(T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], f"{byte}x2"), dtype=half), 8), dtype=f"{byte}x16"), dtype=f"{byte}x8"),
        "int16x8",
    )


def _weight_vector(weight: str):
    """``B[0:4, 0:2]`` as int16 lanes: int8 weights widen in their load, int16 ones load as they are."""
    if weight == "int16":
        return lambda B: B.vload([0, 0], "int16x8")
    return lambda B: T.cast(B.vload([0, 0], "int8x8"), "int16x8")


def _dot_i16x8(activation: str, weight: str):
    splat, weights = _pairs_splat(activation), _weight_vector(weight)

    @tvmscript.prim_func(s_tir=True, activation=activation, weight=weight)
    def impl(
        A: T.Buffer((2,), activation, offset_factor=1),
        B: T.Buffer((LANES, 2), weight, offset_factor=1),
        C: T.Buffer((LANES,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:LANES], A[0:2], B[0:LANES, 0:2])
            T.writes(C[0:LANES])
            C[T.ramp(0, 1, LANES)] = C.vload([0], "int32x4") + T.call_llvm_pure_intrin(
                "int32x4", "llvm.wasm.dot", weights(B), splat(A)
            )

    return impl


@tvmscript.prim_func(s_tir=True)
def _lanewise_description(
    A: T.Buffer((LANES, 2), "int16", offset_factor=1),
    B: T.Buffer((LANES, 2), "int8", offset_factor=1),
    C: T.Buffer((LANES,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:LANES], A[0:LANES, 0:2], B[0:LANES, 0:2])
        T.writes(C[0:LANES])
        for i, k in T.grid(LANES, 2):
            with T.sblock("update"):
                vi, vk = T.axis.remap("SR", [i, k])
                C[vi] = C[vi] + T.cast(A[vi, vk], "int32") * T.cast(B[vi, vk], "int32")


@tvmscript.prim_func(s_tir=True)
def _lanewise_dot_i16x8(
    A: T.Buffer((LANES, 2), "int16", offset_factor=1),
    B: T.Buffer((LANES, 2), "int8", offset_factor=1),
    C: T.Buffer((LANES,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:LANES], A[0:LANES, 0:2], B[0:LANES, 0:2])
        T.writes(C[0:LANES])
        C[T.ramp(0, 1, LANES)] = C.vload([0], "int32x4") + T.call_llvm_pure_intrin(
            "int32x4", "llvm.wasm.dot", T.cast(B.vload([0, 0], "int8x8"), "int16x8"), A.vload([0, 0], "int16x8")
        )


def _relaxed_dot():
    @tvmscript.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), "int8", offset_factor=1),
        B: T.Buffer((LANES, 4), "uint8", offset_factor=1),
        C: T.Buffer((LANES,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:LANES], A[0:4], B[0:LANES, 0:4])
            T.writes(C[0:LANES])
            C[T.ramp(0, 1, LANES)] = T.call_llvm_pure_intrin(
                "int32x4",
                "llvm.wasm.relaxed.dot.i8x16.i7x16.add.signed",
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 4), dtype="int8x16"),
                T.reinterpret(B.vload([0, 0], "uint8x16"), dtype="int8x16"),
                C.vload([0], "int32x4"),
            )

    return impl


def _register() -> dict[tuple[str, str], DotProduct]:
    table = {}
    for activation in ("int8", "uint8", "int16"):
        for weight, suffix in (("int8", ""), ("int16", "_w16")):
            name = f"wasm_build_dot_i16x8_{activation}{suffix}"
            TensorIntrin.register(name, _description(activation, 2, weight), _dot_i16x8(activation, weight), override=True)
            table[activation, weight] = DotProduct(name, activation, 2, weight)
    TensorIntrin.register(LANEWISE_DOT.name, _lanewise_description, _lanewise_dot_i16x8, override=True)
    TensorIntrin.register(RELAXED_DOT.name, _description("int8", 4, "uint8"), _relaxed_dot(), override=True)
    table["int8", "uint8"] = RELAXED_DOT
    return table


LANEWISE_DOT = DotProduct("wasm_build_dot_i16x8_lanewise", "int16", 2)
RELAXED_DOT = DotProduct("wasm_build_relaxed_dot_i8x16_i7x16", "int8", 4, "uint8", instructions=3)
_INTRINSICS = _register()


def tensorize_marked(sch: s_tir.Schedule) -> None:
    """Tensorize every block annotated with `TENSORIZE_ATTR` by the intrinsic it names."""
    marked = {sch.get(b).name_hint: str(sch.get(b).annotations[TENSORIZE_ATTR]) for b in all_blocks(sch)
              if TENSORIZE_ATTR in sch.get(b).annotations}
    for block_name, intrinsic in marked.items():  # by name: tensorizing one replaces its inner blocks
        block = sch.get_sblock(block_name)
        sch.unannotate(block, TENSORIZE_ATTR)
        sch.tensorize(block, intrinsic)


def dot_product(activation: str, weight: str = "int8") -> DotProduct | None:
    """The intrinsic for ``activation`` x ``weight`` products, None for other types: ``dot_i16x8``,
    or the relaxed dot product for int8 x uint8 (weights in [0, 127], see `RELAXED_DOT`)."""
    return _INTRINSICS.get((activation, weight))
