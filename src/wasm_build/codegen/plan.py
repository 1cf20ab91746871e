"""Plan an ahead-of-time executor from a lowered Relax program.

After the VM lowering passes, a static-shape model's `main` is a straight line
of `vm.alloc_storage` / `vm.alloc_tensor`, argument checks, kernel calls and
frees: exactly what `VMExecutable.as_text()` prints. This module walks those
bindings and turns them into an `ExecutorPlan`: every tensor gets a fixed place
(an offset in one static arena, or in the weights blob), and every kernel call
becomes an entry in a list. `codegen` renders the plan as C.

Anything the plan cannot express statically (control flow, data-dependent
shapes, builtins not listed in `_IGNORED_BUILTINS` / `_BUILTIN_HANDLERS`) is a
build error naming what was found; nothing is silently skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
import tvm
from tvm import relax

from ..errors import WasmBuildError
from .abi import ALIGNMENT

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    """Where a tensor's bytes live: `region` is "arena" or "weights".

    While planning, arena tensors sit in a storage (`storage` is its index and
    `offset` is relative to it); `_assign_storage_offsets` makes them absolute.
    """

    region: str
    offset: int
    storage: int | None = None


@dataclass
class PlannedTensor:
    index: int
    shape: tuple[int, ...]
    dtype: DType
    place: Place
    label: str  # for comments in the generated C

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


KernelArg = Union[TensorArg, IntArg, FloatArg]


@dataclass(frozen=True)
class KernelCall:
    kernel: str  # Relax global name, e.g. "fused_matmul_add_relu"
    symbol: str  # C symbol, e.g. "__tvm_ffi_kws_fused_matmul_add_relu"
    args: tuple[KernelArg, ...]


@dataclass(frozen=True)
class Signature:
    name: str
    shape: tuple[int, ...]
    dtype: DType

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> dict[str, Any]:
        """The JSON-style description used by the manifest and the templates."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype.name, "nbytes": self.nbytes}


@dataclass
class ExecutorPlan:
    tensors: list[PlannedTensor] = field(default_factory=list)
    calls: list[KernelCall] = field(default_factory=list)
    inputs: list[tuple[Signature, int]] = field(default_factory=list)  # (signature, tensor index)
    outputs: list[tuple[Signature, int]] = field(default_factory=list)
    arena_size: int = 0
    weights: bytearray = field(default_factory=bytearray)

    @property
    def kernels(self) -> list[tuple[str, str]]:
        """Distinct (kernel, symbol) pairs, in first-call order."""
        seen: dict[str, str] = {}
        for call in self.calls:
            seen.setdefault(call.kernel, call.symbol)
        return list(seen.items())


class UnsupportedProgram(WasmBuildError):
    """The lowered program uses something the static executor cannot run."""


# -- values the walker tracks per Relax variable --------------------------------------


@dataclass
class _Storage:
    """One `vm.alloc_storage` (or an input slot): live from `first` to `last` (binding steps)."""

    index: int
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class _Tensor:
    index: int


@dataclass(frozen=True)
class _Tuple:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class _Shape:
    dims: tuple[int, ...]


class _Nothing:
    """Result of calls that produce no value (checks, frees)."""


_NOTHING = _Nothing()

# Builtins that only check arguments the C API already checks (shapes are static).
_IGNORED_BUILTINS = {"vm.builtin.check_tensor_info", "vm.builtin.match_shape", "vm.builtin.check_shape_info",
                     "vm.builtin.check_tuple_info", "vm.builtin.check_prim_value_info"}
_IGNORED_OPS = {"relax.vm.kill_object", "relax.null_value"}
# Builtins that only appear when a shape is known at run time alone.
_DATA_DEPENDENT_BUILTINS = {"vm.builtin.alloc_shape_heap", "vm.builtin.tensor_to_shape"}


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


def tensor_type_signature(name: str, ty: Any, what: str) -> Signature:
    """Signature of a Relax tensor type with a fully static shape."""
    if not isinstance(ty, relax.TensorType) or ty.shape is None or not isinstance(ty.shape, relax.ShapeExpr):
        raise UnsupportedProgram(
            f"{what} '{name}' has no static tensor shape ({ty})",
            fix="pin every dynamic dimension with --input NAME=SHAPE (or `inputs` in pyproject)",
        )
    return Signature(name, _shape_of(ty.shape, f"{what} '{name}'"), DType.parse(ty.dtype))


class _Planner:
    def __init__(self, module: tvm.IRModule, symbol_prefix: str) -> None:
        self.module = module
        self.symbol_prefix = symbol_prefix
        self.plan = ExecutorPlan()
        self.values: dict[Any, Any] = {}
        self.constants: dict[Any, int] = {}
        self.storages: list[_Storage] = []
        self.step = 0  # index of the binding being planned

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

    def _tensor(self, shape: tuple[int, ...], dtype: DType, place: Place, label: str) -> _Tensor:
        planned = PlannedTensor(len(self.plan.tensors), shape, dtype, place, label)
        self.plan.tensors.append(planned)
        return _Tensor(planned.index)

    def _constant(self, const: Any) -> _Tensor:
        key = const.same_as
        for seen, index in self.constants.items():
            if key(seen):
                return _Tensor(index)
        array = const.value.numpy()
        offset = _align(len(self.plan.weights))
        self.plan.weights.extend(b"\0" * (offset - len(self.plan.weights)))
        self.plan.weights.extend(np.ascontiguousarray(array).tobytes())
        tensor = self._tensor(
            tuple(int(d) for d in array.shape),
            DType.parse(str(array.dtype) if array.dtype != np.bool_ else "bool"),
            Place("weights", offset),
            f"weight{len(self.constants)}",
        )
        self.constants[const] = tensor.index
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
            return self._storage(size)
        if name == "relax.vm.alloc_tensor":
            storage = self._resolve(call.args[0])
            offset = _static_int(call.args[1], "tensor offset")
            shape = _shape_of(call.args[2], f"shape of '{label}'")
            dtype = DType.parse(str(call.args[3].value))
            if not isinstance(storage, _Storage):
                raise UnsupportedProgram("vm.alloc_tensor on something that is not a storage")
            nbytes = dtype.itemsize * math.prod(shape)
            if offset + nbytes > storage.size:
                raise UnsupportedProgram(f"tensor '{label}' does not fit in its storage")
            # Planned on its own, from this binding to its last use: Relax hoists its storages
            # to the top of main and shares each among tensors of one size, so a storage lives
            # as long as all its tensors together (MobileNetV2's arena was 8.4 MB, not 6).
            own = self._storage(nbytes)
            return self._tensor(shape, dtype, Place("arena", 0, own.index), label)
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
            else:
                raise UnsupportedProgram(
                    f"kernel '{gvar.name_hint}' takes an argument of kind {type(value).__name__}, "
                    "which the static executor cannot pass"
                )
        self.plan.calls.append(KernelCall(gvar.name_hint, f"__tvm_ffi_{symbol}", tuple(planned)))
        return _NOTHING

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
        if math.prod(shape.dims) != math.prod(original.shape):
            raise UnsupportedProgram(f"reshape of {original.shape} to {shape.dims} changes the element count")
        return self._tensor(shape.dims, original.dtype, original.place, label)

    def _shape_of_builtin(self, args: list[Any], label: str) -> Any:
        (source,) = args
        return _Shape(self.plan.tensors[source.index].shape)

    def _identity(self, args: list[Any], label: str) -> Any:
        return args[0]

    def _make_tuple(self, args: list[Any], label: str) -> Any:
        return _Tuple(tuple(args))

    def _make_shape(self, args: list[Any], label: str) -> Any:
        return _Shape(tuple(_static_int(a, "make_shape dimension") for a in args))

    # -- driver --------------------------------------------------------------

    def run(self, main: relax.Function, input_names: list[str] | None) -> ExecutorPlan:
        num_input = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
        if num_input != len(main.params):
            raise UnsupportedProgram(
                f"main takes {len(main.params)} parameters but only {num_input} are inputs; weights must be bound",
                fix="bind the weights as constants (frontends do this by default; avoid keep_params_in_input)",
            )
        names = input_names or [p.name for p in main.params]
        for param, name in zip(main.params, names):
            sig = tensor_type_signature(name, param.ty, "input")
            slot = self._storage(sig.nbytes)
            tensor = self._tensor(sig.shape, sig.dtype, Place("arena", 0, slot.index), f"input '{name}'")
            self.values[param] = tensor
            self.plan.inputs.append((sig, tensor.index))

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
            tensor = self.plan.tensors[item.index]
            self.plan.outputs.append((Signature(f"output{i}", tensor.shape, tensor.dtype), item.index))
        self._assign_storage_offsets()
        return self.plan

    def _assign_storage_offsets(self) -> None:
        """Place storages in one arena; storages whose lives do not overlap share bytes.

        Greedy by size (largest first), each at the lowest aligned offset that does
        not collide with an already placed storage live at the same time.
        """
        placed: list[tuple[int, int, _Storage]] = []  # (offset, end, storage)
        offsets: dict[int, int] = {}
        for storage in sorted(self.storages, key=lambda s: (-s.size, s.index)):
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
            if tensor.place.storage is not None:
                tensor.place = Place("arena", offsets[tensor.place.storage] + tensor.place.offset)


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
}


def plan_executor(
    module: tvm.IRModule,
    symbol_prefix: str,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> ExecutorPlan:
    """Plan the static executor of `module["main"]` (a module after VM lowering)."""
    plan = _Planner(module, symbol_prefix).run(module["main"], input_names)
    _check_memory(plan)
    if output_names:
        if len(output_names) != len(plan.outputs):
            raise UnsupportedProgram(
                f"the program returns {len(plan.outputs)} outputs but the model declares {len(output_names)}"
            )
        plan.outputs = [
            (Signature(name, sig.shape, sig.dtype), index) for name, (sig, index) in zip(output_names, plan.outputs)
        ]
    return plan


# wasm32 linear memory: 4 GiB at most, of which the C stack, heap and code need some.
WASM32_MEMORY = 1 << 32
_RESERVED = 64 << 20


def _check_memory(plan: ExecutorPlan) -> None:
    """Refuse a model whose arena and weights cannot fit a wasm32 module, before any kernel is
    compiled (LLVM and the C compiler would fail on such sizes only after a long wait)."""
    needed = plan.arena_size + len(plan.weights)
    if needed + _RESERVED > WASM32_MEMORY:
        largest = max(plan.tensors, key=lambda t: t.nbytes)
        raise UnsupportedProgram(
            f"the model needs {needed / 2**30:.1f} GiB of memory (arena {plan.arena_size / 2**30:.2f} GiB, "
            f"weights {len(plan.weights) / 2**30:.2f} GiB; largest tensor {largest.label!r} "
            f"{list(largest.shape)} {largest.dtype.name}, {largest.nbytes / 2**30:.2f} GiB); "
            "a wasm32 module has 4 GiB at most",
            fix="pin smaller input shapes (--input NAME=SHAPE), or split the model",
        )
