"""Weights computed at init (`compiler.init_kernels`): Winograd's transformed filters are made
by kernels that ``NAME_init`` runs once, so the artifact carries the convs' own weights (float32
or int8), not U (16/9 their values; int16 for int8 weights, 32/9 their bytes). The transform's
kernel writes the packed layout the products read directly, and the executor keeps its results
in a region of their own that runs never reuse (`codegen.plan`, ``derived``)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import tvm
from onnx import numpy_helper
from tvm import relax, te

from wasm_build import WasmModel
from wasm_build.codegen.plan import plan_executor
from wasm_build.compiler.init_kernels import INIT_KERNEL_ATTR, fold_constants, init_kernels
from wasm_build.compiler.passes.conv_rewrite import OPAQUE, call_te_kernel
from wasm_build.compiler.pipeline import lower
from wasm_build.compiler.target import TargetOptions
from wasm_build.frontends import load_model
from wasm_build.testing import models, quantized
from wasm_build.wasm.profile import profile_artifact

from tests.support import build

FILTER = "winograd_filter"


def winograd_convs(seed=0):
    """Two 3x3 convs (padding 1) on a 14x14 plane, enough output tiles for Winograd."""
    g = models.Chain(np.random.default_rng(seed), [1, 16, 14, 14])
    g.conv(16, 24, 3, pad=1).add("Relu")
    g.conv(24, 16, 3, pad=1).add("Relu")
    return g.build()


CASES = {
    "float32": lambda: winograd_convs(),
    "int8": lambda: quantized.qdq(winograd_convs()),
}


def _manifest(directory, name) -> dict:
    return json.loads((directory / f"{name}.json").read_text())


def _initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("init_kernels")
    cache = {}

    def _get(case: str, **options):
        # Small convs: their transformed weights need more than the default budget.
        options = {"winograd-budget": 4.0, **options}
        key = (case, tuple(sorted(options.items())))
        if key not in cache:
            model = CASES[case]()
            name = f"{case}_{len(cache)}"
            cache[key] = (model, name, build(model, name, root, **options).directory)
        return cache[key]

    return _get


@pytest.mark.parametrize("case", list(CASES))
def test_the_artifact_carries_the_weights_not_their_transforms(built, case):
    model, name, directory = built(case)
    manifest = _manifest(directory, name)
    assert sum(FILTER in kernel for kernel in manifest["kernel_work"]) == 0  # not called by runs
    assert sum("conv2d_winograd" in kernel for kernel in manifest["kernel_work"]) == 2, manifest["kernel_work"]
    # Before, U was folded into the weights: 16/9 (float32 F(2x2)) to 4x (F(4x4)) their bytes,
    # 32/9 for int8. Now only alignment separates the weights from the model's initializers.
    assert manifest["weights"]["nbytes"] <= 1.05 * _initializer_bytes(model) + 1024
    assert manifest["derived_nbytes"] >= 16 / 9 * (16 * 24 + 24 * 16) * 9 * (4 if case == "float32" else 1)


@pytest.mark.parametrize("case", list(CASES))
def test_results_equal_the_direct_convs_run_after_run(built, case):
    model, name, directory = built(case)
    _, direct_name, direct = built(case, **{"winograd-budget": 0})
    assert _manifest(direct, direct_name)["derived_nbytes"] == 0
    winograd, reference = WasmModel(directory / f"{name}.wasm"), WasmModel(direct / f"{direct_name}.wasm")
    inputs = models.random_inputs(model, seed=1)
    first = winograd.run(inputs)[0]
    if case == "int8":
        np.testing.assert_array_equal(first, reference.run(inputs)[0])
    else:
        np.testing.assert_allclose(first, reference.run(inputs)[0], rtol=1e-4, atol=1e-4)
    again = WasmModel(directory / f"{name}.wasm")  # a new instance: the filters made again
    np.testing.assert_array_equal(again.run(inputs)[0], first)
    np.testing.assert_array_equal(winograd.run(inputs)[0], first)  # the first instance's are kept


def test_weights_from_a_file_are_transformed_after_loading(built):
    model, name, directory = built("int8", weights="file")
    _, direct_name, direct = built("int8")
    loaded = WasmModel(directory / f"{name}.wasm", weights=directory / f"{name}.weights")
    inputs = models.random_inputs(model, seed=2)
    embedded = WasmModel(direct / f"{direct_name}.wasm")
    np.testing.assert_array_equal(loaded.run(inputs)[0], embedded.run(inputs)[0])


def test_the_profile_times_the_runs_calls_only(built):
    _, _, directory = built("float32")
    names = [k.kernel for k in profile_artifact(directory, runs=2).kernels]
    assert any("conv2d_winograd" in n for n in names), names
    assert not any(FILTER in n for n in names), names


def test_the_plan_runs_the_transforms_at_init_into_their_own_region(tmp_path):
    loaded = load_model(str(models.save(CASES["int8"](), tmp_path / "m.onnx")), {}, tmp_path)
    lowered = lower(loaded.module, "m", TargetOptions(winograd_budget=4.0))
    plan = plan_executor(lowered.module, "m")
    assert len(plan.init_calls) == 2 and all(FILTER in call.kernel for call in plan.init_calls), plan.init_calls
    assert not any(FILTER in call.kernel for call in plan.calls)
    written = {arg.tensor for call in plan.init_calls for arg in call.args[1:]}
    derived = {t.index for t in plan.tensors if t.place.region == "derived"}
    assert derived and derived == written
    # The runs' convs read them.
    assert all(any(getattr(arg, "tensor", None) in derived for arg in call.args) for call in plan.calls
               if "conv2d_winograd" in call.kernel)
    assert plan.derived_size >= sum(plan.tensors[i].nbytes for i in derived)


def _doubled(x: te.Tensor) -> te.Tensor:
    return te.compute(x.shape, lambda i: x[i] * 2.0, name="doubled")


def test_constant_folding_leaves_the_calls_of_init_kernels():
    """`fold_constants` is FoldConstant but for init kernels' calls, whose constant arguments
    stay constants (bound again after folding)."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4,), "float32"))
    weight = relax.const(np.arange(4, dtype=np.float32))
    with builder.function("main", [x]):
        with builder.dataflow():
            at_init = builder.emit(call_te_kernel(builder, _doubled, weight, name="at_init", pattern=OPAQUE,
                                                  attrs={INIT_KERNEL_ATTR: True}))
            folded = builder.emit(builder.call_te(_doubled, weight, primfunc_name_hint="folded"))
            out = builder.emit_output(relax.op.add(relax.op.add(x, at_init), folded))
        builder.emit_func_output(out)
    mod = builder.get()
    assert {g.name_hint for g in init_kernels(mod)} == {"at_init"}
    result = fold_constants()(mod)
    calls = []
    relax.analysis.post_order_visit(
        result["main"], lambda e: isinstance(e, relax.Call) and e.op == tvm.ir.Op.get("relax.call_tir") and calls.append(e)
    )
    assert [c.args[0].name_hint for c in calls] == ["at_init"]  # "folded" became a constant
    (argument,) = calls[0].args[1].fields
    assert isinstance(argument, tvm.ir.expr.Constant)
    np.testing.assert_array_equal(argument.value.numpy(), np.arange(4, dtype=np.float32))
    assert [p.name for p in result["main"].params] == ["x"]


def test_tuning_leaves_the_init_kernels_alone(tmp_path):
    from wasm_build.tuning import extract_tasks
    from wasm_build.tuning.tasks import estimate_flops, left_to_default

    loaded = load_model(str(models.save(CASES["float32"](), tmp_path / "m.onnx")), {}, tmp_path)
    tasks = extract_tasks(loaded.module, TargetOptions(winograd_budget=4.0))
    reasons = {t.task_name: left_to_default(t, estimate_flops(t), 1.0) for t in tasks}
    at_init = {name: reason for name, reason in reasons.items() if FILTER in name}
    assert at_init and set(at_init.values()) == {"run once, at init"}, reasons
