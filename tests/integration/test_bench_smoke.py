"""bench/run.py end to end on the smallest model, and the goal verdicts of its report.

No timing is asserted: only that the command runs, every backend computes the
same thing, and the report says so. Peers that are not installed here (Node's
onnxruntime-web, tract) are skipped by the bench itself, with a note.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import goals, goals_20, render_markdown, sweep_fraction

from tests.support import REPO  # noqa: E402


def test_bench_command_writes_a_row_for_the_smallest_model(tmp_path):
    results_md = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--models", "mlp_784", "--repeat", "4", "--rounds", "2",
         "--max-seconds", "2", "--tuned", "--skip-sweep", "--tuning-dir", str(tmp_path / "tuning"),
         "--out", str(tmp_path / "out"), "--results", str(results_md), "--chart", str(tmp_path / "results.png")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    text = results_md.read_text()
    steady = text.split("## Steady state", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in steady.splitlines() if line.startswith("| model"))
    row = next(line for line in steady.splitlines() if line.startswith("| mlp_784 |"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert re.fullmatch(r"\d+(\.\d+)?", cells["wasm-build (default)"]), row
    # --tuned with an empty database directory: a tuned column that applied nothing.
    assert re.fullmatch(r"\d+(\.\d+)?", cells["wasm-build (tuned)"]), row
    assert re.fullmatch(r"\d+(\.\d+)?", cells["onnxruntime native"]), row

    raw = json.loads((tmp_path / "out" / "results.json").read_text())
    wasm = raw["models"]["mlp_784"]["backends"]["wasm-build"]
    assert wasm["runs"] == 4 and len(wasm["times_ms"]) == 4  # two rounds of two runs
    assert raw["settings"]["rounds"] == 2 and raw["settings"]["tuning_records"] == {"mlp_784": 0}
    assert wasm["timed_in"] == "wasm", "the in-wasm timing harness did not link"
    assert 0 < wasm["code_bytes"] < wasm["wasm_bytes"]
    web = raw["models"]["mlp_784"]["backends"].get("onnxruntime-web", {})
    if "median_ms" in web:  # Node and onnxruntime-web installed (scripts/setup.sh does): timed in each round
        assert web["runs"] == 4 and len(web["times_ms"]) == 4, web.get("runs")
    # Every backend that ran computed the same logits as onnxruntime.
    for backend, result in raw["models"]["mlp_784"]["backends"].items():
        if result.get("max_rel_error") is not None:
            assert result["max_rel_error"] < 1e-4, (backend, result["max_rel_error"])


def _results(**medians: dict[str, float]) -> dict:
    """A results document as run.py writes it, with only what the report reads."""
    models = {
        name: {"onnx_bytes": 1000, "backends": {b: {"median_ms": ms, "runs": 5} for b, ms in backends.items()}}
        for name, backends in medians.items()
    }
    models["mobilenet_v2"]["backends"]["wasm-build"].update(startup_ms=42.0, code_bytes=200 * 1024, wasm_bytes=10**7)
    models["mlp_784"]["backends"]["wasm-build"].update(code_bytes=320 * 1024, wasm_bytes=10**6)
    return {
        "command": "python bench/run.py", "date": "today", "settings": {"repeat": 5, "max_seconds": 1.0},
        "machine": {"cpu": "cpu", "cores": 2, "vector": "avx2", "os": "Linux", "load_average": [0.0]},
        "versions": {"python": "3"}, "notes": [], "models": models,
    }


def test_goal_verdicts_take_the_worst_model():
    results = _results(
        mlp_784={"wasm-build": 0.1, "wasm-build tuned": 0.05, "onnxruntime-web": 0.2, "onnxruntime": 0.02},
        mobilenet_v2={"wasm-build": 50.0, "wasm-build tuned": 30.0, "onnxruntime-web": 40.0, "onnxruntime": 6.0},
    )
    verdicts = {row[0]: (row[2], row[3]) for row in goals(results)}
    # Default: 2x faster on the MLP but slower on MobileNetV2 (40/50 = 0.8x), so missed.
    assert verdicts["default build at least as fast as onnxruntime-web"] == ("0.80x (worst: mobilenet_v2)", "**missed**")
    # Tuned: 4x and 1.33x -> the worst is 1.33x, missed; native: 2.5x and 5x -> 5x, missed.
    assert verdicts["tuned build 2x faster than onnxruntime-web"] == ("1.33x (worst: mobilenet_v2)", "**missed**")
    assert verdicts["tuned build within 3x of onnxruntime native"] == ("5.00x (worst: mobilenet_v2)", "**missed**")
    assert verdicts["start-up of MobileNetV2 (instantiate + init + first run)"] == ("42.0 ms", "**met**")
    assert verdicts["code size (.wasm minus weights)"] == ("320 KB (worst: mlp_784)", "**missed**")


def test_a_missing_peer_leaves_its_goal_unmeasured_and_the_report_says_why():
    results = _results(mlp_784={"wasm-build": 0.1, "onnxruntime": 0.02}, mobilenet_v2={"wasm-build": 5.0, "onnxruntime": 6.0})
    for entry in results["models"].values():
        entry["backends"]["onnxruntime-web"] = {"skipped": "onnxruntime-web is not installed; fix: npm install"}
    verdicts = {row[0]: row[3] for row in goals(results)}
    assert verdicts["default build at least as fast as onnxruntime-web"] == "not measured"
    text = render_markdown(results, None, Path("RESULTS.md"))
    assert text.count("onnxruntime-web is not installed; fix: npm install") == 1  # said once, not per model


def test_speed_goals_can_be_judged_on_the_fastest_runs():
    results = _results(
        mlp_784={"wasm-build": 0.1, "wasm-build tuned": 0.05, "onnxruntime-web": 0.2, "onnxruntime": 0.02},
        mobilenet_v2={"wasm-build": 50.0, "wasm-build tuned": 30.0, "onnxruntime-web": 40.0, "onnxruntime": 6.0},
    )
    for entry in results["models"].values():
        for backend in entry["backends"].values():
            backend["min_ms"] = backend["median_ms"] / 2
    results["models"]["mobilenet_v2"]["backends"]["onnxruntime-web"]["min_ms"] = 30.0  # its median was 40
    verdicts = {row[0]: (row[2], row[3]) for row in goals(results, "min_ms")}
    assert verdicts["default build at least as fast as onnxruntime-web"] == ("1.20x (worst: mobilenet_v2)", "**met**")
    text = render_markdown(results, None, Path("RESULTS.md"))
    assert "fastest run instead" in text and "1.20x (worst: mobilenet_v2)" in text


def test_issue_20_verdicts_take_the_worst_shape_and_model():
    results = _results(
        mlp_784={"wasm-build": 0.1, "onnxruntime-web": 0.3},
        mobilenet_v2={"wasm-build": 50.0, "onnxruntime-web": 40.0},
        vit_tiny={"wasm-build": 60.0, "onnxruntime-web": 81.0},
    )
    shape = dict(kind="matmul", label="", dims=[], median_ms=1.0)
    results["sweep"] = {
        "peak_gmacs": 20.0, "peak_gbytes": 100.0, "peak_rounds_gmacs": [20.0], "rounds": 1, "notes": [],
        "shapes": [
            dict(shape, name="mm_best", macs=18_000_000, min_ms=1.0, dense=True),  # 18 GMAC/s: 90% of the peak
            dict(shape, name="mm_ragged", macs=14_000_000, min_ms=1.0, dense=True),  # 70%
            dict(shape, name="qk", macs=16_000_000, min_ms=1.0, dense=False),  # 80%
        ],
    }
    verdicts = {row[0]: (row[2], row[3]) for row in goals_20(results)}
    assert verdicts["dense matmuls and 1x1 convs at the measured SIMD128 peak"] == ("70% (worst: mm_ragged)", "**missed**")
    assert verdicts["worst dense shape against the best"] == ("22% below (mm_best 90%)", "**missed**")
    assert verdicts["attention products at the measured SIMD128 peak"] == ("80% (worst: qk)", "**met**")
    assert verdicts["ViT-Tiny / DeiT-Tiny against onnxruntime-web"] == ("1.35x (worst: vit_tiny)", "**met**")
    assert verdicts["every model at least as fast as onnxruntime-web"] == ("0.80x (worst: mobilenet_v2)", "**missed**")
    # (3 * 0.8 * 1.35) ** (1/3) = 1.48
    assert verdicts["geometric mean over the models against onnxruntime-web"] == ("1.48x over 3 models", "**missed**")
    text = render_markdown(results, None, Path("RESULTS.md"))
    assert "## Contraction shape sweep" in text and "| mm_ragged |" in text


def test_a_sweep_shape_is_rated_against_the_peak_of_its_own_round():
    """Each round's fastest run against the peak measured before that round, the median over
    rounds: a fast run in a round whose peak was high does not count against a low best peak."""
    sweep = {"peak_gmacs": 20.0, "peak_rounds_gmacs": [20.0, 10.0, 16.0]}
    # 18, 9 and 14 GMAC/s in the three rounds: 90%, 90%, 87.5% of their rounds' peaks.
    row = {"macs": 18_000_000, "min_ms": 1.0, "round_min_ms": [1.0, 2.0, 18 / 14]}
    assert sweep_fraction(row, sweep) == pytest.approx(0.9)
    # Results written before rounds were recorded: the fastest run against the best peak.
    assert sweep_fraction({"macs": 18_000_000, "min_ms": 1.0}, sweep) == pytest.approx(0.9)
    assert sweep_fraction({"macs": 16_000_000, "min_ms": 1.0, "round_min_ms": [1.0]}, sweep) == pytest.approx(0.8)


def test_start_up_is_the_median_of_the_rounds():
    """With an even number of rounds the start-up is the mean of the middle two (not the
    faster one), and the phases shown are those of the slower middle round."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from run import merge_rounds
    finally:
        sys.path.remove(str(REPO / "bench"))
    rounds = [{"times_ms": [1.0], "startup_ms": ms, "startup_phases_ms": {"first run": ms - 1}} for ms in (60, 30, 50, 40)]
    merged = merge_rounds(rounds)
    assert merged["startup_ms"] == 45
    assert merged["startup_rounds_ms"] == [30, 40, 50, 60]
    assert merged["startup_phases_ms"] == {"first run": 49}
    assert merge_rounds(rounds[:3])["startup_ms"] == 50


def test_readme_speed_section_is_a_copy_of_bench_results():
    """Benchmark numbers live in bench/RESULTS.md; the README's section is generated from it."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "readme.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
