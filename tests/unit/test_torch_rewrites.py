"""Mends of TVM's exported-program frontend (`frontends.torch_rewrites`), found by the zoo
(issue 18): each small program, translated with them and run by TVM natively, gives what
PyTorch gives. The wasm builds of such programs are the zoo's `@pt2` cases."""

from __future__ import annotations

import numpy as np
import pytest

from wasm_build.errors import WasmBuildError
from wasm_build.frontends.torch_rewrites import to_relax

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional


def _tvm_run(module: nn.Module, *inputs: torch.Tensor) -> list[np.ndarray]:
    import tvm
    from tvm import relax
    mod = to_relax(torch.export.export(module, inputs))
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](*(tvm.runtime.tensor(i.numpy()) for i in inputs))
    return [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]  # one tensor or a tuple


def _check(module: nn.Module, *inputs: torch.Tensor) -> None:
    want = module(*inputs)
    want = [w.detach().numpy() for w in (want if isinstance(want, tuple) else (want,))]
    got = _tvm_run(module, *inputs)
    assert len(got) == len(want)
    for w, g in zip(want, got):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


class LastFrame(nn.Module):
    def forward(self, x):
        return x[:, -1] * 2, x.select(2, -3)


class Nearest(nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=(12, 12), mode="nearest"), F.interpolate(x, scale_factor=2.0, mode="nearest")


class Elus(nn.Module):
    def forward(self, x):
        return F.selu(x), F.elu(x, alpha=0.7), F.celu(x, alpha=0.5)


class AdaptiveMax(nn.Module):
    def forward(self, x):
        return F.adaptive_max_pool2d(x, 1), F.adaptive_max_pool2d(x, (4, 2))


class AdaptiveMaxIndices(nn.Module):
    def forward(self, x):
        values, indices = F.adaptive_max_pool2d(x, 2, return_indices=True)
        return values + indices.float()


def test_negative_select_counts_from_the_end():
    _check(LastFrame(), torch.randn(2, 5, 4))


def test_nearest_resize_picks_pytorch_pixels():
    _check(Nearest(), torch.randn(1, 3, 16, 16))


def test_elu_keeps_its_scales():
    _check(Elus(), torch.randn(2, 3, 8) * 3)


def test_adaptive_max_pool_to_a_dividing_size():
    _check(AdaptiveMax(), torch.randn(1, 3, 8, 8))


def test_adaptive_max_pool_indices_are_refused_by_name():
    with pytest.raises(WasmBuildError, match="indices"):
        _tvm_run(AdaptiveMaxIndices(), torch.randn(1, 3, 8, 8))


class Unfolds(nn.Module):
    def forward(self, x):
        plain = F.unfold(x, kernel_size=3)
        spaced = F.unfold(x, kernel_size=(3, 2), dilation=(1, 2), padding=(1, 0), stride=(2, 1))
        return plain, spaced, F.unfold(x[0], kernel_size=2, stride=2)  # the last unbatched


def test_unfold_gathers_each_window():
    """F.unfold (aten.im2col), batched and not, with dilation, padding and stride; an inf in the
    input stays inf in every column that holds it."""
    x = torch.randn(2, 3, 9, 8)
    x[0, 1, 4, 4] = float("inf")
    _check(Unfolds(), x)


class RoundedDivisions(nn.Module):
    """EdgeNeXt's positional encoding divides a float arange by a Python int (`dim_t // 2`)."""

    def forward(self, x):
        return x // 2, torch.div(x, 3, rounding_mode="trunc"), torch.div(7.0, x, rounding_mode="floor")


def test_rounded_division_of_a_float_tensor_by_a_number():
    _check(RoundedDivisions(), torch.randn(2, 8) * 10 + 0.5)


class GridSamples(nn.Module):
    """PyTorch's grid is (N, H, W, 2); TVM's exported-program converter passed it as (N, 2, H, W)."""

    def forward(self, x, grid):
        return (F.grid_sample(x, grid, align_corners=False),
                F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True))


def test_grid_sample_reads_pytorchs_grid_layout():
    torch.manual_seed(0)
    _check(GridSamples(), torch.randn(1, 3, 6, 7), torch.rand(1, 5, 4, 2) * 2.2 - 1.1)


def test_sorting_in_a_program_is_refused_by_name(tmp_path):
    # TVM's sort, argsort and topk call its C++ runtime; its compiler failed on them with
    # "Cannot treat type `ir.Call` as type `ir.Expr`".
    from wasm_build.frontends import load_model

    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values + torch.topk(x, 3, dim=-1).values.sum(-1, keepdim=True)

    torch.export.save(torch.export.export(Sorts(), (torch.randn(2, 10),)), str(tmp_path / "sorts.pt2"))
    with pytest.raises(WasmBuildError, match=r"'sorts.pt2' sorts \(.*topk\): TVM computes sorting with its C\+\+ runtime") as info:
        load_model("sorts.pt2", {}, tmp_path)
    assert "export the model to ONNX" in info.value.fix
