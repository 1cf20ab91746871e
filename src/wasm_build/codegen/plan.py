"""Plan an ahead-of-time executor from a lowered Relax program.

After the VM lowering passes, a static-shape model's `main` is a straight line
of `vm.alloc_storage` / `vm.alloc_tensor`, argument checks, kernel calls and
frees: exactly what `VMExecutable.as_text()` prints. This module walks those
bindings and turns them into an `ExecutorPlan`: every tensor gets a fixed place
(an offset in one static arena, or in the weights blob), and every kernel call
becomes an entry in a list. `codegen` renders the plan as C.

A model with bounded symbolic dimensions plans the same way, at the bounds: every
tensor gets the place its largest shape needs, and tensors whose shape depends on the
symbolic dimensions carry it as slots of the shape heap (`shape_heap`), which the
executor fills once per run from the input shapes.

Anything the plan cannot express statically (control flow, data-dependent
shapes, builtins not listed in `_IGNORED_BUILTINS` / `_BUILTIN_HANDLERS`) is a
build error naming what was found; nothing is silently skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np
import tvm
from tvm import relax

from ..compiler.input_values import ValueRange
from ..compiler.row_chunks import ROW_CHUNK_ATTR
from ..errors import WasmBuildError
from .abi import ALIGNMENT
from .shape_heap import (
    MAKE_LOAD,
    MATCH_ASSERT_IMM,
    MATCH_ASSERT_LOAD,
    MATCH_NO_OP,
    MATCH_STORE,
    Dim,
    HeapDim,
    InputAxis,
    ShapeHeap,
)

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Constants of at most one vector (scales, zero points) are aligned to a vector, not a cache line.
SMALL_CONSTANT = 16
SMALL_ALIGNMENT = 16


def _align(value: int, alignment: int = ALIGNMENT) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class DType:
    """A DLPack data type, plus its TVM spelling."""

    name: str
    code: int
    bits: int
    lanes: int = 1

    @classmethod
    def parse(cls, name: str) -> DType:
        dt = tvm.runtime.DataType(str(name))
        return cls(str(name), int(dt.type_code), int(dt.bits), int(dt.lanes))

    @property
    def itemsize(self) -> int:
        return max(1, self.bits // 8) * self.lanes


@dataclass(frozen=True)
class Place:
    """Where a tensor's bytes live: `region` is "arena", "weights", "derived" (computed from
    the weights once, at init: `ExecutorPlan.init_calls`) or "heap".

    While planning, arena tensors sit in a storage (`storage` is its index and
    `offset` is relative to it); `_assign_storage_offsets` makes them absolute.
    """

    region: str
    offset: int
    storage: int | None = None


@dataclass
class PlannedTensor:
    index: int
    shape: tuple[int, ...]  # with symbolic dimensions: the largest shape, which its place holds
    dtype: DType
    place: Place
    label: str  # for comments in the generated C
    dims: tuple[Dim, ...] | None = None  # the shape at run time, when it depends on symbolic dimensions

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass(frozen=True)
class TensorArg:
    tensor: int


@dataclass(frozen=True)
class IntArg:
    value: int


@dataclass(frozen=True)
class FloatArg:
    value: float


@dataclass(frozen=True)
class HeapArg:
    """An integer argument read from the shape heap at run time (a symbolic dimension)."""

    slot: int


KernelArg = Union[TensorArg, IntArg, FloatArg, HeapArg]


@dataclass(frozen=True)
class ChunkArg:
    """A tensor argument of a chunked call: its shape in one chunk, and the bytes of one row."""

    arg: int  # position in the call's arguments
    shape: tuple[int, ...]
    row_bytes: int


@dataclass(frozen=True)
class RowChunks:
    """A kernel compiled for `rows` rows (`compiler.row_chunks`), called once per chunk of the
    `count` rows of its row-wise tensors, each chunk's tensors `rows` rows further."""

    rows: int
    count: Dim
    args: tuple[ChunkArg, ...]


@dataclass(frozen=True)
class KernelCall:
    kernel: str  # Relax global name, e.g. "fused_matmul_add_relu"
    symbol: str  # C symbol, e.g. "__tvm_ffi_kws_fused_matmul_add_relu"
    args: tuple[KernelArg, ...]
    chunks: RowChunks | None = None


@dataclass(frozen=True)
class Signature:
    name: str
    shape: tuple[int, ...]  # with symbolic dimensions: the largest shape
    dtype: DType
    dims: tuple[int | str, ...] | None = None  # sizes and symbolic dimensions ("seq", "(frames - 1) // 2")
    values: ValueRange | None = None  # an input that indexes a table: the values it may hold

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> dict[str, Any]:
        """The JSON-style description used by the manifest and the templates."""
        values = {} if self.values is None else {"values": self.values.describe()}
        if self.dims is None:
            return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype.name, "nbytes": self.nbytes, **values}
        return {
            "name": self.name,
            "shape": list(self.dims),
            "max_shape": list(self.shape),
            "dtype": self.dtype.name,
            "max_nbytes": self.nbytes,
            **values,
        }


@dataclass
class ExecutorPlan:
    tensors: list[PlannedTensor] = field(default_factory=list)
    calls: list[KernelCall] = field(default_factory=list)
    # Calls that read only weights (kernels run at init, `compiler.init_kernels`): made once,
    # by NAME_init, into the "derived" region (`derived_size` bytes), which runs never reuse.
    init_calls: list[KernelCall] = field(default_factory=list)
    derived_size: int = 0
    inputs: list[tuple[Signature, int]] = field(default_factory=list)  # (signature, tensor index)
    outputs: list[tuple[Signature, int]] = field(default_factory=list)
    arena_size: int = 0
    weights: bytearray = field(default_factory=bytearray)
    # Symbolic dimensions: the shape heap, and the shape functions that fill its derived
    # slots (called once per new set of input shapes, before the kernels).
    heap: ShapeHeap | None = None
    heap_tensor: int | None = None
    shape_functions: list[KernelCall] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        return self.heap is not None and bool(self.heap.dims)

    @property
    def kernels(self) -> list[tuple[str, str]]:
        """Distinct (kernel, symbol) pairs, in first-call order."""
        seen: dict[str, str] = {}
        for call in [*self.init_calls, *self.shape_functions, *self.calls]:
            seen.setdefault(call.kernel, call.symbol)
        return list(seen.items())


class UnsupportedProgram(WasmBuildError):
    """The lowered program uses something the static executor cannot run."""


# -- values the walker tracks per Relax variable --------------------------------------


@dataclass
class _Storage:
    """The storage of one tensor (or an input slot): live from `first` to `last` (binding steps).
    `used`: a kernel call has taken it (before that, it holds nothing a call could read);
    `at_init`: an init call writes it; `kept`: runs read it too (or it is an output), so it
    lives in the derived region. Init's intermediates stay in the arena, which init has to
    itself."""

    index: int
    size: int
    first: int
    last: int
    used: bool = False
    at_init: bool = False
    kept: bool = False

    @property
    def derived(self) -> bool:
        return self.at_init and self.kept


@dataclass(frozen=True)
class _Tensor:
    index: int


@dataclass(frozen=True)
class _Tuple:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class _Shape:
    dims: tuple[Dim, ...]


@dataclass(frozen=True)
class _HeapValue:
    """An integer read from the shape heap (`vm.builtin.make_prim_value`)."""

    slot: int


class _Nothing:
    """Result of calls that produce no value (checks, frees)."""


_NOTHING = _Nothing()

# Builtins that only check arguments the C API already checks (`match_shape` is planned:
# it stores symbolic dimensions).
_IGNORED_BUILTINS = {"vm.builtin.check_tensor_info", "vm.builtin.check_shape_info",
                     "vm.builtin.check_tuple_info", "vm.builtin.check_prim_value_info"}
_IGNORED_OPS = {"relax.vm.kill_object", "relax.null_value"}
# Builtins that only appear when a shape is known at run time alone.
_DATA_DEPENDENT_BUILTINS = {"vm.builtin.tensor_to_shape"}


def _static_int(value: Any, what: str) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, tvm.tirx.IntImm):
        return int(value.value)
    raise UnsupportedProgram(
        f"{what} is not a static integer ({value}); the model has a data-dependent or dynamic shape",
        fix="pin every dynamic dimension with --input NAME=SHAPE (or `inputs` in pyproject)",
    )


def _shape_of(expr: Any, what: str) -> tuple[int, ...]:
    if isinstance(expr, relax.ShapeExpr):
        return tuple(_static_int(v, what) for v in expr.values)
    raise UnsupportedProgram(f"{what}: expected a static shape, found {type(expr).__name__}")


def _int(value: Any) -> int:
    """A plain integer argument of a builtin."""
    return _static_int(value, "builtin argument")


class _Planner:
    def __init__(self, module: tvm.IRModule, symbol_prefix: str) -> None:
        self.module = module
        self.symbol_prefix = symbol_prefix
        self.plan = ExecutorPlan()
        self.values: dict[Any, Any] = {}
        self.constants: dict[tuple[str, tuple[int, ...], bytes], int] = {}  # (dtype, shape, digest) -> tensor
        self.storages: list[_Storage] = []
        self.step = 0  # index of the binding being planned
        self.bounds: dict[str, tuple[int, int]] = {}  # symbolic dimension -> (min, max)
        self.input_of: dict[int, int] = {}  # tensor index -> input index

    # -- allocation ----------------------------------------------------------

    def _storage(self, nbytes: int) -> _Storage:
        storage = _Storage(len(self.storages), max(nbytes, 1), self.step, self.step)
        self.storages.append(storage)
        return storage

    def _touch(self, tensor: _Tensor, step: int) -> None:
        """Extend the life of the tensor's storage to `step`."""
        place = self.plan.tensors[tensor.index].place
        if place.storage is not None:
            storage = self.storages[place.storage]
            storage.last = max(storage.last, step)

    def _tensor(self, dims: tuple[Any, ...], dtype: DType, place: Place, label: str) -> _Tensor:
        """A tensor of shape `dims`: sizes, or (symbolic dimensions) heap slots and, for
        inputs until `match_shape` stores them, the dimensions' variables."""
        shape = tuple(self._largest(d) for d in dims)
        symbolic = tuple(dims) if any(not isinstance(d, int) for d in dims) else None
        planned = PlannedTensor(len(self.plan.tensors), shape, dtype, place, label, symbolic)
        self.plan.tensors.append(planned)
        return _Tensor(planned.index)

    def _largest(self, dim: Any) -> int:
        if isinstance(dim, int):
            return dim
        if isinstance(dim, HeapDim):
            high = self._heap().slot_bounds(dim.slot)[1]
            if high >= 1 << 40:
                raise UnsupportedProgram(
                    f"a tensor dimension ({self._heap().slot_text(dim.slot)}) has no upper bound",
                    fix="bound every symbolic dimension of the inputs (--dim NAME=MIN..MAX)",
                )
            return max(high, 1)
        return self.bounds[dim.name][1]  # an input's dimension, before match_shape stores it

    def _heap(self) -> ShapeHeap:
        if self.plan.heap is None:
            raise UnsupportedProgram("the program reads the shape heap before allocating it")
        return self.plan.heap

    def _dims(self, value: Any, what: str) -> tuple[Dim, ...]:
        """A shape argument: a static `R.shape`, or a shape made from the heap."""
        if isinstance(value, relax.ShapeExpr):
            return _shape_of(value, what)
        resolved = self._resolve(value)
        if isinstance(resolved, _Shape):
            return resolved.dims
        raise UnsupportedProgram(f"{what}: expected a shape, found {type(resolved).__name__}")

    def _constant(self, const: Any) -> _Tensor:
        """The weights tensor holding `const`'s value, placed once per distinct value: constant
        folding makes one copy of a weight per call (an RNN's recurrent weights packed once per
        unrolled step, tied embeddings, quantized models' scales and zero points), and reading one
        copy keeps it in cache across the calls."""
        array = const.value.numpy()
        data = array.tobytes()  # C order (np.ascontiguousarray would make a scalar a vector)
        content = (str(array.dtype), tuple(array.shape), hashlib.sha256(data).digest())
        if content in self.constants:
            return _Tensor(self.constants[content])
        # Constants of one vector or less (scalar scales and zero points) are 16-byte aligned
        # (a vector's alignment), not a cache line each.
        small = array.nbytes <= SMALL_CONSTANT
        offset = _align(len(self.plan.weights), SMALL_ALIGNMENT if small else ALIGNMENT)
        self.plan.weights.extend(b"\0" * (offset - len(self.plan.weights)))
        self.plan.weights.extend(data)
        tensor = self._tensor(
            tuple(int(d) for d in array.shape),
            DType.parse(str(array.dtype) if array.dtype != np.bool_ else "bool"),
            Place("weights", offset),
            f"weight{len(self.constants)}",
        )
        self.constants[content] = tensor.index
        return tensor

    # -- expressions ---------------------------------------------------------

    def _resolve(self, expr: Any) -> Any:
        if isinstance(expr, relax.Var):
            if expr not in self.values:
                raise UnsupportedProgram(f"variable '{expr.name}' is used before it is defined")
            return self.values[expr]
        if isinstance(expr, tvm.ir.expr.GenericConst):
            if isinstance(expr.value, tvm.runtime.Tensor):
                return self._constant(expr)
            return expr.value  # a dtype
        if isinstance(expr, relax.Tuple):
            return _Tuple(tuple(self._resolve(f) for f in expr.fields))
        if isinstance(expr, relax.ShapeExpr):
            return _Shape(_shape_of(expr, "shape"))
        if isinstance(expr, relax.TupleGetItem):
            inner = self._resolve(expr.tuple_value)
            if not isinstance(inner, _Tuple):
                raise UnsupportedProgram("TupleGetItem on a value that is not a tuple")
            return inner.items[int(expr.index)]
        if isinstance(expr, (tvm.tirx.IntImm, tvm.tirx.FloatImm, tvm.ir.expr.StringImm)):
            return expr
        raise UnsupportedProgram(f"unsupported expression in the lowered program: {type(expr).__name__}")

    def _call(self, call: relax.Call, label: str) -> Any:
        op = call.op
        if isinstance(op, relax.GlobalVar):
            return self._kernel_call(op, call.args)
        if isinstance(op, relax.ExternFunc):
            return self._builtin(str(op.global_symbol), list(call.args), label)
        name = getattr(op, "name", str(op))
        if name in _IGNORED_OPS:
            return _NOTHING
        if name == "relax.vm.alloc_storage":
            (size,) = _shape_of(call.args[0], "storage size")
            # Only a bound for its tensors: each is placed on its own (below), so Relax's
            # storage itself takes no room (placed, it sat in the arena beside the first
            # tensors: 16 MB more for float32 ResNet-18's largest weights computed at init).
            return _Storage(-1, max(size, 1), self.step, self.step)
        if name == "relax.vm.alloc_tensor":
            storage = self._resolve(call.args[0])
            offset = _static_int(call.args[1], "tensor offset")
            dims = self._dims(call.args[2], f"shape of '{label}'")
            dtype = DType.parse(str(call.args[3].value))
            if not isinstance(storage, _Storage):
                raise UnsupportedProgram("vm.alloc_tensor on something that is not a storage")
            tensor = self._tensor(dims, dtype, Place("arena", 0), label)
            planned = self.plan.tensors[tensor.index]
            # (With symbolic dimensions, TVM sized the storage for the bounds with its own analysis.)
            if planned.dims is None and offset + planned.nbytes > storage.size:
                raise UnsupportedProgram(f"tensor '{label}' does not fit in its storage")
            # Planned on its own, from this binding to its last use: Relax hoists its storages
            # to the top of main and shares each among tensors of one size, so a storage lives
            # as long as all its tensors together (MobileNetV2's arena was 8.4 MB, not 6).
            planned.place = Place("arena", 0, self._storage(planned.nbytes).index)
            return tensor
        if name == "relax.call_builtin_with_ctx":
            builtin = str(call.args[0].global_symbol)
            return self._builtin(builtin, list(call.args[1].fields), label)
        raise UnsupportedProgram(
            f"operation '{name}' is not supported by the static executor",
            fix="report it to wasm-build with the model; the operation needs an executor rule",
        )

    def _kernel_call(self, gvar: relax.GlobalVar, args: Any) -> Any:
        func = self.module[gvar]
        if not isinstance(func, tvm.tirx.PrimFunc):
            raise UnsupportedProgram(f"call to Relax function '{gvar.name_hint}': only calls into kernels are supported")
        symbol = str(func.attrs["global_symbol"]) if func.attrs and "global_symbol" in func.attrs else gvar.name_hint
        if not _C_IDENTIFIER.fullmatch(symbol):  # it is pasted into C as a name: never from model text
            raise UnsupportedProgram(f"kernel '{gvar.name_hint}' has the symbol {symbol!r}, which is not a C identifier")
        planned: list[KernelArg] = []
        for arg in args:
            value = self._resolve(arg)
            if isinstance(value, _Tensor):
                self._touch(value, self.step)
                planned.append(TensorArg(value.index))
            elif isinstance(value, tvm.tirx.IntImm):
                planned.append(IntArg(int(value.value)))
            elif isinstance(value, tvm.tirx.FloatImm):
                planned.append(FloatArg(float(value.value)))
            elif isinstance(value, _HeapValue):
                planned.append(HeapArg(value.slot))
            else:
                raise UnsupportedProgram(
                    f"kernel '{gvar.name_hint}' takes an argument of kind {type(value).__name__}, "
                    "which the static executor cannot pass"
                )
        chunks = func.attrs.get(ROW_CHUNK_ATTR) if func.attrs else None
        if chunks is None:
            _check_static_params(gvar.name_hint, func, planned, self.plan.tensors)
        call = KernelCall(
            gvar.name_hint,
            f"__tvm_ffi_{symbol}",
            tuple(planned),
            self._row_chunks(gvar.name_hint, chunks, planned) if chunks is not None else None,
        )
        if chunks is None and self._at_init(planned):
            self.plan.init_calls.append(call)
        elif self.plan.heap_tensor is not None and TensorArg(self.plan.heap_tensor) in planned:
            # A shape function: it computes symbolic values from the heap alone, so the
            # executor calls it once per new set of input shapes, before any kernel.
            self._heap().add_shape_function(func, gvar.name_hint)
            self.plan.shape_functions.append(call)
        else:
            self.plan.calls.append(call)
        return _NOTHING

    def _at_init(self, args: list[KernelArg]) -> bool:
        """Whether a call with ``args`` reads weights and values computed from them only, so
        that one call at init stands for every run's (the kernels run at init that graph
        passes emit, `compiler.init_kernels`, and weight packings applied to their results).
        Its other tensors are fresh ones it writes: they move to the derived region. Every
        call's storages are marked used afterwards."""
        tensors = [self.plan.tensors[a.tensor] for a in args if isinstance(a, TensorArg)]
        places = [t.place for t in tensors]
        fresh = {p.storage for p in places if p.storage is not None and not self.storages[p.storage].used}
        # A symbolic dimension reaches a kernel as an argument or in a tensor's shape (a slice
        # of position embeddings as long as the input): such a call differs from run to run.
        varies = any(isinstance(a, HeapArg) for a in args) or any(t.dims is not None for t in tensors)
        reads_constants_only = not varies and all(
            p.region in ("weights", "derived") or p.storage in fresh or (p.storage is not None and self.storages[p.storage].at_init)
            for p in places
        )
        at_init = reads_constants_only and bool(fresh) and any(p.storage not in fresh for p in places)
        for place in places:
            if place.storage is not None:
                storage = self.storages[place.storage]
                storage.used = True
                storage.at_init = storage.at_init or (at_init and storage.index in fresh)
                storage.kept = storage.kept or not at_init
        return at_init

    def _row_chunks(self, kernel: str, attr: Any, args: list[KernelArg]) -> RowChunks:
        """How to call a kernel compiled for a chunk of rows; the row-wise tensors' places get
        room for whole chunks (the last one may run past the actual rows)."""
        rows = int(attr["rows"])
        axes = [int(a) for a in attr["axes"]]
        if len(axes) != len(args):
            raise UnsupportedProgram(f"kernel '{kernel}' takes {len(args)} arguments but was chunked for {len(axes)}")
        counts: list[Dim] = []
        chunk_args = []
        for position, (arg, axis) in enumerate(zip(args, axes)):
            if axis < 0:
                continue
            if not isinstance(arg, TensorArg):
                raise UnsupportedProgram(f"kernel '{kernel}' has rows in an argument that is not a tensor")
            tensor = self.plan.tensors[arg.tensor]
            dims = tensor.dims or tensor.shape
            counts.append(dims[axis])
            row_bytes = math.prod(tensor.shape[axis + 1 :]) * tensor.dtype.itemsize
            chunk_args.append(ChunkArg(position, (*tensor.shape[:axis], rows, *tensor.shape[axis + 1 :]), row_bytes))
            whole = -(-tensor.shape[axis] // rows) * rows * row_bytes * math.prod(tensor.shape[:axis])
            if tensor.place.storage is not None:
                storage = self.storages[tensor.place.storage]
                storage.size = max(storage.size, whole)
            elif tensor.place.region == "arena":
                raise UnsupportedProgram(f"kernel '{kernel}': a chunked tensor has no storage to widen")
        if not counts or any(c != counts[0] for c in counts):
            raise UnsupportedProgram(f"kernel '{kernel}' was chunked, but its tensors disagree on the number of rows")
        return RowChunks(rows, counts[0], tuple(chunk_args))

    def _builtin(self, name: str, args: list[Any], label: str) -> Any:
        if name in _IGNORED_BUILTINS:
            return _NOTHING
        handler = _BUILTIN_HANDLERS.get(name)
        if name in _DATA_DEPENDENT_BUILTINS:
            raise UnsupportedProgram(
                "the model computes a tensor whose shape depends on input values (a data-dependent shape, "
                f"TVM's '{name}'), e.g. Expand or Reshape to a shape computed from an input, NonZero, or TopK with "
                "a computed k; the executor plans every tensor's memory ahead of time",
                fix="make the shape a constant in the model (export with constant shapes, or fold the shape "
                "computation with onnxsim), or run that part of the model in the host",
            )
        if handler is None:
            raise UnsupportedProgram(
                f"the lowered program calls builtin '{name}', which the static executor does not support",
                fix="models with data-dependent shapes or control flow cannot be compiled ahead of time; "
                "check that every input shape is pinned",
            )
        return handler(self, [self._resolve(a) for a in args], label)

    # -- builtins ------------------------------------------------------------

    def _reshape(self, args: list[Any], label: str) -> Any:
        source, shape = args
        if not isinstance(source, _Tensor) or not isinstance(shape, _Shape):
            raise UnsupportedProgram("vm.builtin.reshape with non-static arguments")
        original = self.plan.tensors[source.index]
        static = all(isinstance(d, int) for d in shape.dims) and original.dims is None
        if static and math.prod(shape.dims) != math.prod(original.shape):
            raise UnsupportedProgram(f"reshape of {original.shape} to {shape.dims} changes the element count")
        return self._tensor(shape.dims, original.dtype, original.place, label)

    def _shape_of_builtin(self, args: list[Any], label: str) -> Any:
        (source,) = args
        tensor = self.plan.tensors[source.index]
        return _Shape(tensor.dims or tensor.shape)

    def _identity(self, args: list[Any], label: str) -> Any:
        return args[0]

    def _make_tuple(self, args: list[Any], label: str) -> Any:
        return _Tuple(tuple(args))

    def _make_shape(self, args: list[Any], label: str) -> Any:
        if not args or not isinstance(args[0], _Tensor):  # sizes only
            return _Shape(tuple(_int(a) for a in args))
        # (heap, ndim, code, value, code, value, ...): a size, or a heap slot to load.
        ndim = _int(args[1])
        dims: list[Dim] = []
        for code, value in zip(args[2 : 2 + 2 * ndim : 2], args[3 : 3 + 2 * ndim : 2]):
            dims.append(HeapDim(_int(value)) if _int(code) == MAKE_LOAD else _int(value))
        return _Shape(tuple(dims))

    def _make_prim_value(self, args: list[Any], label: str) -> Any:
        _heap, code, value = args
        if _int(code) == MAKE_LOAD:
            return _HeapValue(_int(value))
        return tvm.tirx.IntImm("int64", _int(value))

    def _alloc_shape_heap(self, args: list[Any], label: str) -> Any:
        (size,) = args
        self.plan.heap = ShapeHeap(size=_int(size))
        heap = self._tensor((self.plan.heap.size,), DType.parse("int64"), Place("heap", 0), "shape heap")
        self.plan.heap_tensor = heap.index
        return heap

    def _match_shape(self, args: list[Any], label: str) -> Any:
        """Input shapes: symbolic dimensions stored into the heap, the others checked (by the
        C API). Checks of computed values (the return value's shape) hold by construction."""
        value = args[0]
        if not isinstance(value, _Tensor) or len(args) < 3 or not isinstance(args[1], _Tensor):
            return _NOTHING
        ndim = _int(args[2])
        codes = [(_int(c), _int(v)) for c, v in zip(args[3 : 3 + 2 * ndim : 2], args[4 : 4 + 2 * ndim : 2])]
        input_index = self.input_of.get(value.index)
        if input_index is None:
            if any(code == MATCH_STORE for code, _ in codes):
                raise UnsupportedProgram(
                    "the model computes a tensor whose shape depends on input values (a data-dependent shape); "
                    "the executor plans every tensor's memory ahead of time",
                    fix="make the shape a constant in the model, or run that part of the model in the host",
                )
            return _NOTHING
        tensor = self.plan.tensors[value.index]
        dims = list(tensor.dims or tensor.shape)
        for axis, (code, slot) in enumerate(codes):
            if code in (MATCH_ASSERT_IMM, MATCH_NO_OP):
                continue
            var = dims[axis]
            if code == MATCH_STORE:
                if not isinstance(var, tvm.tirx.Var) or var.name not in self.bounds:
                    raise UnsupportedProgram(f"input {input_index} dimension {axis} is not a bounded symbolic dimension")
                self._heap().store_input_dim(var.name, self.bounds[var.name], slot)
            elif code != MATCH_ASSERT_LOAD:
                raise UnsupportedProgram(f"vm.builtin.match_shape with an unknown code {code}")
            self._heap().input_axes.append(InputAxis(input_index, axis, slot, code == MATCH_STORE))
            dims[axis] = HeapDim(slot)
        tensor.dims = tuple(dims)
        return _NOTHING

    # -- driver --------------------------------------------------------------

    def run(self, main: relax.Function, input_names: list[str] | None) -> ExecutorPlan:
        num_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
        if num_input != len(main.params):
            raise UnsupportedProgram(
                f"main takes {len(main.params)} parameters but only {num_input} are inputs; weights must be bound",
                fix="bind the weights as constants (frontends do this by default; avoid keep_params_in_input)",
            )
        names = input_names or [p.name for p in main.params]
        attrs = main.attrs or {}
        lower = {str(k): int(v) for k, v in (attrs.get("tir_var_lower_bound") or {}).items()}
        upper = {str(k): int(v) for k, v in (attrs.get("tir_var_upper_bound") or {}).items()}
        self.bounds = {name: (max(lower.get(name, 1), 1), high) for name, high in upper.items()}
        for index, (param, name) in enumerate(zip(main.params, names)):
            dims = self._input_dims(name, param.ty)
            tensor = self._tensor(dims, DType.parse(param.ty.dtype), Place("arena", 0), f"input '{name}'")
            planned = self.plan.tensors[tensor.index]
            planned.place = Place("arena", 0, self._storage(planned.nbytes).index)
            self.storages[planned.place.storage].used = True  # it holds the input
            shown = None if planned.dims is None else tuple(d if isinstance(d, int) else d.name for d in dims)
            self.values[param] = tensor
            self.input_of[tensor.index] = index
            self.plan.inputs.append((Signature(name, planned.shape, planned.dtype, shown), tensor.index))

        body = main.body
        if not isinstance(body, relax.SeqExpr):
            raise UnsupportedProgram("main's body is not a sequence of bindings")
        for block in body.blocks:
            for binding in block.bindings:
                self.step += 1
                if not isinstance(binding, relax.VarBinding):
                    raise UnsupportedProgram(f"unsupported binding {type(binding).__name__} (match_cast)")
                value = binding.value
                label = binding.var.name
                if isinstance(value, relax.Call):
                    result = self._call(value, label)
                elif isinstance(value, relax.If):
                    raise UnsupportedProgram("the model has control flow (If), which the static executor cannot run")
                else:
                    result = self._resolve(value)
                self.values[binding.var] = result

        returned = self._resolve(body.body)
        flat = list(_flatten(returned))
        for i, item in enumerate(flat):
            if not isinstance(item, _Tensor):
                raise UnsupportedProgram(f"output {i} is a {type(item).__name__}, not a tensor")
            self._touch(item, self.step + 1)  # outputs are copied out after the last kernel
            storage = self.plan.tensors[item.index].place.storage
            if storage is not None:
                self.storages[storage].kept = True
            tensor = self.plan.tensors[item.index]
            self.plan.outputs.append((Signature(f"output{i}", tensor.shape, tensor.dtype, self._shown(tensor)), item.index))
        for tensor in self.plan.tensors:
            if tensor.dims is not None and any(isinstance(d, tvm.tirx.Var) for d in tensor.dims):
                raise UnsupportedProgram(f"{tensor.label} has a symbolic dimension the program never reads")
        self._assign_storage_offsets()
        return self.plan

    def _input_dims(self, name: str, ty: Any) -> tuple[Any, ...]:
        """An input's dims: sizes, and the bounded symbolic dimensions' variables."""
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            raise UnsupportedProgram(
                f"input '{name}' has no static tensor shape ({ty})",
                fix="pin or bound every dynamic dimension (--input NAME=SHAPE, --dim NAME=MIN..MAX)",
            )
        dims = []
        for value in ty.shape.values:
            if isinstance(value, tvm.tirx.Var) and value.name in self.bounds:
                dims.append(value)
            else:
                dims.append(_static_int(value, f"input '{name}'"))
        return tuple(dims)

    def _shown(self, tensor: PlannedTensor) -> tuple[int | str, ...] | None:
        """A tensor's shape for people: sizes, and what the symbolic ones compute."""
        if tensor.dims is None:
            return None
        return tuple(d if isinstance(d, int) else self._heap().slot_text(d.slot) for d in tensor.dims)

    def _assign_storage_offsets(self) -> None:
        """Place storages in one arena; storages whose lives do not overlap share bytes.

        Greedy by size (largest first), each at the lowest aligned offset that does
        not collide with an already placed storage live at the same time.
        """
        placed: list[tuple[int, int, _Storage]] = []  # (offset, end, storage)
        offsets: dict[int, int] = {}
        derived: dict[int, int] = {}
        for storage in self.storages:  # computed at init, kept for every run: one after another
            if storage.derived:
                derived[storage.index] = _align(self.plan.derived_size)
                self.plan.derived_size = derived[storage.index] + storage.size
        self.plan.derived_size = _align(self.plan.derived_size)
        # Init's intermediates are placed like the runs' tensors: init runs before any run, and
        # its calls keep their order, so lives that overlap in the program's order are the
        # only ones that meet.
        for storage in sorted((s for s in self.storages if not s.derived), key=lambda s: (-s.size, s.index)):
            conflicts = sorted(
                (start, end)
                for start, end, other in placed
                if other.first <= storage.last and storage.first <= other.last
            )
            offset = 0
            for start, end in conflicts:
                if offset + storage.size <= start:
                    break
                offset = max(offset, _align(end))
            placed.append((offset, offset + storage.size, storage))
            offsets[storage.index] = offset
        self.plan.arena_size = _align(max((end for _, end, _ in placed), default=0))
        for tensor in self.plan.tensors:
            storage = tensor.place.storage
            if storage in derived:
                tensor.place = Place("derived", derived[storage] + tensor.place.offset)
            elif storage is not None:
                tensor.place = Place("arena", offsets[storage] + tensor.place.offset)


def _check_static_params(kernel: str, func: Any, args: list[KernelArg], tensors: list[PlannedTensor]) -> None:
    """A kernel compiled for static shapes must not get tensors whose shape varies: that is a
    chunked kernel whose `ROW_CHUNK_ATTR` was lost, and calling it once would be wrong."""
    for param, arg in zip(func.params, args):
        if not isinstance(arg, TensorArg) or not isinstance(param.ty, tvm.tirx.BufferType):
            continue
        static = all(isinstance(d, tvm.tirx.IntImm) for d in param.ty.shape)
        if static and tensors[arg.tensor].dims is not None:
            raise UnsupportedProgram(
                f"kernel '{kernel}' has static shapes but is passed {tensors[arg.tensor].label}, whose shape varies"
            )


def _flatten(value: Any):
    if isinstance(value, _Tuple):
        for item in value.items:
            yield from _flatten(item)
    else:
        yield value


_BUILTIN_HANDLERS: dict[str, Callable[[_Planner, list[Any], str], Any]] = {
    "vm.builtin.reshape": _Planner._reshape,
    "vm.builtin.shape_of": _Planner._shape_of_builtin,
    "vm.builtin.copy": _Planner._identity,
    "vm.builtin.make_tuple": _Planner._make_tuple,
    "vm.builtin.make_shape": _Planner._make_shape,
    "vm.builtin.make_prim_value": _Planner._make_prim_value,
    "vm.builtin.alloc_shape_heap": _Planner._alloc_shape_heap,
    "vm.builtin.match_shape": _Planner._match_shape,
}


def plan_executor(
    module: tvm.IRModule,
    symbol_prefix: str,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    value_ranges: Mapping[int, ValueRange] | None = None,
) -> ExecutorPlan:
    """Plan the static executor of `module["main"]` (a module after VM lowering); `value_ranges`
    (by input position, `compiler.input_values`) are the values index inputs may hold."""
    plan = _Planner(module, symbol_prefix).run(module["main"], input_names)
    _check_memory(plan)
    ranges = value_ranges or {}
    plan.inputs = [(dataclasses.replace(sig, values=ranges.get(i)), index) for i, (sig, index) in enumerate(plan.inputs)]
    if output_names:
        if len(output_names) != len(plan.outputs):
            raise UnsupportedProgram(
                f"the program returns {len(plan.outputs)} outputs but the model declares {len(output_names)}"
            )
        plan.outputs = [(dataclasses.replace(sig, name=name), index) for name, (sig, index) in zip(output_names, plan.outputs)]
    return plan


# wasm32 linear memory: 4 GiB at most, of which the C stack, heap and code need some.
WASM32_MEMORY = 1 << 32
_RESERVED = 64 << 20


def _check_memory(plan: ExecutorPlan) -> None:
    """Refuse a model whose arena and weights cannot fit a wasm32 module, before any kernel is
    compiled (LLVM and the C compiler would fail on such sizes only after a long wait)."""
    needed = plan.arena_size + plan.derived_size + len(plan.weights)
    if needed + _RESERVED > WASM32_MEMORY:
        largest = max(plan.tensors, key=lambda t: t.nbytes)
        raise UnsupportedProgram(
            f"the model needs {needed / 2**30:.1f} GiB of memory (arena {plan.arena_size / 2**30:.2f} GiB, "
            f"computed at init {plan.derived_size / 2**30:.2f} GiB, "
            f"weights {len(plan.weights) / 2**30:.2f} GiB; largest tensor {largest.label!r} "
            f"{list(largest.shape)} {largest.dtype.name}, {largest.nbytes / 2**30:.2f} GiB); "
            "a wasm32 module has 4 GiB at most",
            fix="pin smaller input shapes (--input NAME=SHAPE), or split the model",
        )
