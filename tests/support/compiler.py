"""Looking inside the compiler: fused modules, their kernels, wasm disassembly, and native and
onnxruntime references, for the tests of graph passes and schedule rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import onnxruntime as ort
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from wasm_build.compiler.init_kernels import fold_constants
from wasm_build.compiler.passes import epilogue_transposes_pass
from wasm_build.compiler.passes import graph_passes as relax_passes
from wasm_build.compiler.schedules import default_schedule_pass
from wasm_build.compiler.schedules.analysis import all_blocks


NATIVE = {"kind": "llvm"}


WASM = {
    "kind": "llvm",
    "mtriple": "wasm32-unknown-unknown-wasm",
    "mattr": ["+simd128"],
    "num-cores": 1,
}


SCHEDULED = "tirx.is_scheduled"


def fused_module(model, target, schedule=True, graph_passes=False, winograd_budget=0.0):
    """The Relax module as the compile pipeline has it right after the schedule pass
    (with ``graph_passes``, also after ``relax_passes`` as in the pipeline)."""
    target = tvm.target.Target(target)
    mod = from_onnx(model, keep_params_in_input=False)
    # As in compile.lower, constants are folded before the graph passes.
    graph = [relax.transform.DecomposeOpsForInference(), relax.transform.FoldConstant(), *relax_passes(target, winograd_budget)]
    passes = [*(graph if graph_passes else []),
        relax.backend.DispatchSampling(),
        relax.backend.DispatchSortScan(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        fold_constants(),  # as the pipeline: kernels marked to run at init stay calls
        epilogue_transposes_pass(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if schedule:
        passes.append(default_schedule_pass(target))
    with target:
        return tvm.transform.Sequential(passes)(mod)


def scheduled_module(model, tmp_path, dims=None, **options):
    """The module of a wasm build (its frontend, quantized and graph passes, legalization and
    schedules, default options but ``options`` (`TargetOptions` fields); symbolic dimensions
    bounded by ``dims``, name -> DimSpec), right after the schedule passes."""
    import onnx

    from wasm_build.compiler.pipeline import legalize_passes, optimize_passes, plan_for_bounds, schedule_passes
    from wasm_build.compiler.target import TargetOptions
    from wasm_build.frontends.onnx import load_onnx

    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    options = TargetOptions(**options)
    target = options.tvm_target()
    passes = [*optimize_passes(), *legalize_passes(target, options), *schedule_passes(target, default_schedules=True)]
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(passes)(plan_for_bounds(load_onnx(path, {}, dims).module))


def prim_funcs(mod):
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}


def scheduled_names(mod):
    return sorted(n for n, f in prim_funcs(mod).items() if f.attrs and f.attrs.get(SCHEDULED))


def run_native(mod, feeds):
    vm = relax.VirtualMachine(tvm.compile(mod, tvm.target.Target(NATIVE)), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(v) for v in feeds.values()]).numpy()


def random_feeds(model, rng):
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype("float32")
    return feeds


def onnxruntime_output(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")


def wasm_disassembly(mod, kernel_substring, tmp_path, pipeline="default"):
    funcs = {
        name: func.with_attr("global_symbol", name)
        for name, func in prim_funcs(mod).items()
        if kernel_substring in name
    }
    assert funcs, prim_funcs(mod).keys()
    lib = tvm.tirx.build(tvm.IRModule(funcs), target=tvm.target.Target(WASM), pipeline=pipeline)
    obj = tmp_path / f"{kernel_substring}.o"
    lib.write_to_file(str(obj))
    result = subprocess.run([OBJDUMP, "-d", str(obj)], capture_output=True, text=True, check=True)
    return result.stdout


def kernel_instructions(wasm_path) -> dict[str, Counter]:
    """Per kernel (function name) of a linked module: how often each SIMD instruction occurs."""
    text = subprocess.run([OBJDUMP, "-d", str(wasm_path)], capture_output=True, text=True, check=True).stdout
    kernels: dict[str, Counter] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            current = kernels.setdefault(header.group(1), Counter())
        elif current is not None:
            current.update(re.findall(r"\b([if](?:8x16|16x8|32x4|64x2)\.[a-z0-9_]+)", line))
            unknown = re.match(r"^\s*[0-9a-f]+:((?: [0-9a-f]{2})+)\s+<unknown>", line)
            if unknown and unknown.group(1).strip() in _UNNAMED:
                current[_UNNAMED[unknown.group(1).strip()]] += 1
    return kernels


# The two rounds of `tir.transpose_shuffle`'s 4 x 4 transposes, as llvm-objdump prints an
# `i8x16.shuffle`'s lanes (commas dropped): 32-bit lanes of two rows interleaved (low, high
# halves), then 64-bit halves of two interleaves; each one `punpck*` instruction on x86.
INTERLEAVE_MASKS = {
    "0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23", "8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31",
    "0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23", "8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31",
}


# Instructions llvm-objdump 19 prints as <unknown>, by their bytes (prefix and LEB128 opcode).
_UNNAMED = {"fd 93 02": "i32x4.relaxed_dot_i8x16_i7x16_add_s", "fd 85 02": "f32x4.relaxed_madd"}


def innermost_loops(disassembly):
    """The bodies (instruction lines) of the loops in an objdump of wasm code that hold no loop."""
    loops, stack = [], []
    for line in disassembly.splitlines():
        instruction = " ".join(part.strip() for part in line.split("\t")[1:]).strip()
        for body in stack:
            body[1].append(instruction)
        if instruction.split(" ")[0] in ("block", "loop", "if"):
            stack.append((instruction.split()[0], []))
        elif instruction == "end" and stack:
            kind, body = stack.pop()
            if kind == "loop" and not any(i.startswith("loop") for i in body):
                loops.append(body)
    return loops


def blocks_writing(func, buffer):
    sch = tvm.s_tir.Schedule(func)
    blocks = [sch.get(block) for block in all_blocks(sch)]
    return [stmt for stmt in blocks if any(region.source.same_as(buffer) for region in stmt.writes)]


def assert_epilogue_writes_only_the_output(func) -> None:
    """A kernel computing padded rows writes only the real output: its epilogue is not folded
    into the tile write-back, which would store the padding rows past the output."""
    output = func.params[-1]
    writers = blocks_writing(func, output)
    assert writers
    for block in writers:
        domain = int(np.prod([int(iv.dom.extent) for iv in block.iter_vars]))
        assert domain == int(np.prod([int(d) for d in output.shape])), block.name_hint
