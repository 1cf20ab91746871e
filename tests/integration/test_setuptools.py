"""setuptools integration end to end: real pip, real builds, wheels that run.

wasm-build is installed (as a wheel built from a copy of this repository) into
a venv under a temporary directory; `pip wheel` runs there, mostly without
build isolation. Every build uses a cache directory of its own under tmp
(`WASM_BUILD_CACHE_DIR`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.support import EXAMPLE as EXAMPLE_PROJECT
from tests.support.pip import Venv, build_wasm_build_wheel, copy_project, make_venv, wheel_names
from wasm_build.testing.models import mlp, save

MODEL_FILES = ("libkws.a", "kws.h", "kws.wasm", "kws.json")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wasm-build-wheel")
    build_wasm_build_wheel(root / "wheelhouse", root / "scratch")
    return root / "wheelhouse"


@pytest.fixture(scope="session")
def venv(tmp_path_factory, wheelhouse: Path) -> Venv:
    (wheel,) = wheelhouse.glob("wasm_build-*.whl")
    return make_venv(tmp_path_factory.mktemp("venv") / "venv", wheel)


def the_wheel(directory: Path) -> Path:
    (wheel,) = directory.glob("*.whl")
    return wheel


def stage_lines(log: str, model: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if f"wasm-build: {model}:" in line]


# -- the example project --------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_build(tmp_path_factory, venv: Venv):
    """example_project/ built once: (project copy, wheel, pip log, cache dir)."""
    root = tmp_path_factory.mktemp("example")
    project = copy_project(EXAMPLE_PROJECT, root / "project")
    cache = root / "cache"
    result = venv.pip_wheel(project, root / "dist", WASM_BUILD_CACHE_DIR=str(cache))
    return project, the_wheel(root / "dist"), result.stdout, cache


def test_example_wheel_holds_both_models(example_build):
    project, wheel, log, _ = example_build
    assert wheel.name == "kws_demo-0.1.0-py3-none-any.whl"
    names = set(wheel_names(wheel))
    for model in ("kws", "mlp"):
        for filename in MODEL_FILES:
            assert f"kws_demo/wasm/{model}/{filename.replace('kws', model)}" in names
        assert (project / "build" / "wasm" / model / f"{model}.wasm").is_file()  # out-dir, for C and Rust
        assert f"kws_demo/wasm/{model}/rust/src/lib.rs" in names
    # The module every model's Rust crate includes (../../rust-runtime/runtime.rs) ships with them.
    assert "kws_demo/wasm/rust-runtime/runtime.rs" in names
    assert not any(n.startswith("kws_demo_models/") for n in names)  # build-time only
    # pip -v shows each stage.
    for model in ("kws", "mlp"):
        stages = " ".join(stage_lines(log, model))
        for stage in ("toolchain", "frontend", "compile", "codegen", "link", "smoke test"):
            assert stage in stages, f"{model}: no '{stage}' line in the pip -v log"
    with zipfile.ZipFile(wheel) as archive:
        wheel_meta = archive.read("kws_demo-0.1.0.dist-info/WHEEL").decode()
        manifest = json.loads(archive.read("kws_demo/wasm/kws/kws.json"))
    assert "Root-Is-Purelib: true" in wheel_meta and "Tag: py3-none-any" in wheel_meta
    assert manifest["name"] == "kws" and manifest["inputs"][0]["shape"] == [1, 1, 49, 40]


def test_example_runs_from_the_installed_wheel(example_build, venv: Venv, tmp_path: Path):
    project, wheel, _, _ = example_build
    site = tmp_path / "site"
    venv.pip("install", "--no-deps", "--target", site, wheel)
    code = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, onnxruntime
        import kws_demo
        sys.path.insert(0, {str(project)!r})
        from kws_demo_models.relax_mlp import reference

        mfcc = np.random.default_rng(1).standard_normal((1, 1, 49, 40)).astype(np.float32)
        session = onnxruntime.InferenceSession({str(project / "models" / "kws.onnx")!r})
        expected = session.run(None, {{"x": mfcc}})[0]
        logits = kws_demo.kws_logits(mfcc)
        features = np.random.default_rng(2).standard_normal((1, 64)).astype(np.float32)
        scores = kws_demo.mlp_scores(features)
        print(json.dumps({{
            "package": kws_demo.__file__,
            "wasm": str(kws_demo.artifact("kws", "kws.wasm")),
            "kws_error": float(np.abs(logits - expected).max()),
            "kws_scale": float(np.abs(expected).max()),
            "mlp_error": float(np.abs(scores - reference(features)).max()),
            "label": kws_demo.spot_keyword(mfcc),
        }}))
        """
    )
    env = venv.env(PYTHONPATH=str(site))
    out = json.loads(venv.python_run(code, env=env).stdout.strip().splitlines()[-1])
    assert Path(out["package"]).is_relative_to(site)
    assert Path(out["wasm"]) == site / "kws_demo" / "wasm" / "kws" / "kws.wasm"
    assert out["kws_error"] <= 1e-4 + 1e-3 * out["kws_scale"]
    assert out["mlp_error"] <= 1e-5
    assert out["label"] in ("silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def test_second_build_reuses_the_cache_and_says_so(example_build, venv: Venv, tmp_path: Path):
    _, first_wheel, _, cache = example_build
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "project")  # a clean checkout, same cache
    log = venv.pip_wheel(project, tmp_path / "dist", WASM_BUILD_CACHE_DIR=str(cache)).stdout
    for model in ("kws", "mlp"):
        lines = stage_lines(log, model)
        assert any(f"wasm-build: {model}: up to date (cache" in line for line in lines), lines
        assert not any("compile" in line for line in lines), lines
    names = wheel_names(the_wheel(tmp_path / "dist"))
    assert sorted(names) == sorted(wheel_names(first_wheel))


def test_changing_one_model_rebuilds_only_it(example_build, venv: Venv, tmp_path: Path):
    _, _, _, cache = example_build
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "project")
    venv.python_run(f"import runpy, sys; sys.argv = ['make_models.py', '--seed', '7']; runpy.run_path({str(project / 'models' / 'make_models.py')!r}, run_name='__main__')")
    log = venv.pip_wheel(project, tmp_path / "dist", WASM_BUILD_CACHE_DIR=str(cache)).stdout
    assert any("wasm-build: kws: compile" in line for line in stage_lines(log, "kws"))
    assert any("wasm-build: mlp: up to date (cache" in line for line in stage_lines(log, "mlp"))
    assert not any("compile" in line for line in stage_lines(log, "mlp"))


# -- small projects written by the tests ----------------------------------------------------


def tiny_project(
    root: Path,
    package: str = "tiny",
    *,
    backend: str = "setuptools.build_meta",
    tool_table: str = "",
    model_table: str = "",
    with_table: bool = True,
) -> Path:
    """A package with one ONNX MLP model `m` (input "x" [1, 64])."""
    root.mkdir(parents=True)
    (root / package).mkdir()
    (root / package / "__init__.py").write_text('"""A package with a wasm model."""\n')
    save(mlp(), root / "models" / "m.onnx")
    text = textwrap.dedent(
        f"""\
        [build-system]
        requires = ["setuptools>=68", "wasm-build"]
        build-backend = "{backend}"

        [project]
        name = "{package}"
        version = "0.1"

        [tool.setuptools]
        packages = ["{package}"]
        """
    )
    if with_table:
        text += f'\n[tool.wasm-build]\n{tool_table}\n[[tool.wasm-build.models]]\nname = "m"\nsource = "models/m.onnx"\n{model_table}\n'
    (root / "pyproject.toml").write_text(text)
    return root


def test_projects_without_the_table_are_left_alone(venv: Venv, tmp_path: Path):
    project = tiny_project(tmp_path / "plain", "plain_pkg", with_table=False)
    log = venv.pip_wheel(project, tmp_path / "dist", WASM_BUILD_CACHE_DIR=str(tmp_path / "cache")).stdout
    assert "build_wasm_model" not in log and "wasm-build:" not in log
    assert [n for n in wheel_names(the_wheel(tmp_path / "dist")) if ".dist-info/" not in n] == ["plain_pkg/__init__.py"]
    assert not (tmp_path / "cache").exists()


def test_overrides_from_config_settings_and_environment(venv: Venv, tmp_path: Path):
    project = tiny_project(tmp_path / "proj", "tiny_cs", backend="wasm_build.build_meta")
    result = venv.pip_wheel(
        project,
        tmp_path / "dist",
        "-C", "wasm-build.models.m.weights=file",
        "-C", "wasm-build.wheel-dir=tiny_cs/models",
        WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"),
        WASM_BUILD_SMOKE_TEST="0",
    )
    names = wheel_names(the_wheel(tmp_path / "dist"))
    assert "tiny_cs/models/m/m.weights" in names and "tiny_cs/models/m/libm.a" in names
    assert not any(n.startswith("tiny_cs/wasm/") for n in names)
    assert "smoke test" not in " ".join(stage_lines(result.stdout, "m"))  # WASM_BUILD_SMOKE_TEST=0


def test_composes_with_a_custom_build_command(venv: Venv, tmp_path: Path):
    project = tiny_project(tmp_path / "proj", "tiny_custom", model_table="smoke-test = false")
    (project / "setup.py").write_text(
        textwrap.dedent(
            """\
            from pathlib import Path
            from setuptools import setup
            from setuptools.command.build import build


            class build_with_marker(build):
                def run(self):
                    super().run()
                    Path(self.build_lib, "tiny_custom", "marker.txt").write_text("the project's own build ran")


            setup(cmdclass={"build": build_with_marker})
            """
        )
    )
    venv.pip_wheel(project, tmp_path / "dist", WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"))
    names = wheel_names(the_wheel(tmp_path / "dist"))
    assert "tiny_custom/marker.txt" in names  # the project's build class still runs...
    assert "tiny_custom/wasm/m/m.wasm" in names  # ...and ours is added to it
    assert the_wheel(tmp_path / "dist").name.endswith("-py3-none-any.whl")


def test_editable_install_finds_artifacts_in_the_source_tree(venv: Venv, tmp_path: Path):
    project = tiny_project(tmp_path / "proj", "tiny_editable", model_table="smoke-test = false")
    env = venv.env(WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"))
    venv.pip("install", "--no-deps", "--no-build-isolation", "-e", project, env=env)
    try:
        code = textwrap.dedent(
            """
            from importlib import resources
            import numpy as np
            from wasm_build import WasmModel
            path = resources.files("tiny_editable") / "wasm" / "m" / "m.wasm"
            (out,) = WasmModel(path).run({"x": np.ones((1, 64), np.float32)})
            print(path, out.shape)
            """
        )
        out = venv.python_run(code, env=env).stdout.strip().splitlines()[-1]
    finally:
        venv.pip("uninstall", "-y", "tiny_editable", env=env)
    path, _, shape = out.partition(" ")
    assert Path(path) == project / "tiny_editable" / "wasm" / "m" / "m.wasm"
    assert shape == "(1, 10)"  # mlp(): 64 -> 128 -> 10


def test_concurrent_builds_share_one_cache(venv: Venv, tmp_path: Path):
    cache = tmp_path / "cache"
    projects = [tiny_project(tmp_path / f"proj{i}", "tiny_concurrent") for i in range(2)]
    env = venv.env(WASM_BUILD_CACHE_DIR=str(cache))
    processes = [
        subprocess.Popen(
            [str(venv.python), "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", str(p), "-w", str(p / "dist")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in projects
    ]
    outputs = [process.communicate()[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    for project in projects:
        assert "tiny_concurrent/wasm/m/m.wasm" in wheel_names(the_wheel(project / "dist"))
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries  # one key, whichever build published it
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging left behind
    manifest = json.loads((entries[0] / "m.json").read_text())
    for relative, digest in manifest["artifacts"].items():
        assert hashlib.sha256((entries[0] / relative).read_bytes()).hexdigest() == digest, relative
    # The cache entry is usable: a third build reuses it.
    third = tiny_project(tmp_path / "proj3", "tiny_concurrent")
    log = venv.pip_wheel(third, third / "dist", WASM_BUILD_CACHE_DIR=str(cache)).stdout
    assert "wasm-build: m: up to date (cache" in log


def test_clean_builds_are_byte_identical(venv: Venv, tmp_path: Path):
    wheels, artifact_trees = [], []
    for i in range(2):
        # Different directories and caches: nothing may depend on where the build ran.
        project = tiny_project(tmp_path / f"checkout-{i}" / "proj", "tiny_repro", model_table='weights = "file"')
        venv.pip_wheel(
            project,
            project / "dist",
            WASM_BUILD_CACHE_DIR=str(tmp_path / f"cache-{i}"),
            SOURCE_DATE_EPOCH="1700000000",
        )
        wheels.append(the_wheel(project / "dist").read_bytes())
        out = project / "build" / "wasm" / "m"
        artifact_trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert set(artifact_trees[0]) >= {"libm.a", "m.h", "m.wasm", "m.json", "m.weights"}
    for name in artifact_trees[0]:
        assert artifact_trees[0][name] == artifact_trees[1][name], f"{name} differs between two clean builds"
    assert wheels[0] == wheels[1]
    for name, data in artifact_trees[0].items():
        for needle in (str(tmp_path).encode(), b"/tmp/", os.path.expanduser("~").encode() + b"/"):
            assert needle not in data, f"{name} contains the absolute path {needle!r}"


# -- configuration errors, through pip --------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "tool_table", "model_table", "args", "env", "expected"),
    [
        ("setuptools.build_meta", "", "smoke-tset = false", [], {},
         ["unknown key 'tool.wasm-build.models[0].smoke-tset'", "did you mean 'smoke-test'"]),
        ("setuptools.build_meta", "", "simd = 'yes'", [], {}, ["tool.wasm-build.models[0].simd must be bool"]),
        ("setuptools.build_meta", "", "", [], {"WASM_BUILD_SMOKE_TEST": "perhaps"},
         ["WASM_BUILD_SMOKE_TEST='perhaps' is not a boolean"]),
        ("wasm_build.build_meta", "", "", ["-C", "wasm-build.models.m.smoke_tst=0"], {},
         ["-C wasm-build.models.m.smoke_tst: unknown key 'smoke-tst'", "did you mean 'smoke-test'"]),
        ("wasm_build.build_meta", "", "", ["-C", "wasm-build.models.n.simd=false"], {},
         ["no model named 'n'"]),
    ],
)
def test_config_errors_stop_pip_before_any_build(venv, tmp_path, backend, tool_table, model_table, args, env, expected):
    project = tiny_project(tmp_path / "proj", "tiny_err", backend=backend, tool_table=tool_table, model_table=model_table)
    result = venv.pip_wheel(project, tmp_path / "dist", *args, check=False, WASM_BUILD_CACHE_DIR=str(tmp_path / "c"), **env)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
    assert "running build_wasm_model" not in result.stdout and "wasm-build: m: toolchain" not in result.stdout


def test_missing_source_file_stops_pip(venv: Venv, tmp_path: Path):
    project = tiny_project(tmp_path / "proj", "tiny_missing")
    (project / "models" / "m.onnx").unlink()
    result = venv.pip_wheel(project, tmp_path / "dist", check=False, WASM_BUILD_CACHE_DIR=str(tmp_path / "c"))
    assert result.returncode != 0
    assert "tool.wasm-build.models[0].source = 'models/m.onnx': no such file" in result.stdout
    assert "running build_wasm_model" not in result.stdout


def test_build_failure_message_stands_alone(venv: Venv, tmp_path: Path):
    """Without -v pip shows only the backend's output on failure: model, stage and fix must be in it."""
    project = tiny_project(tmp_path / "proj", "tiny_broken", model_table='inputs = { y = { shape = [1, 64] } }')
    env = venv.env(WASM_BUILD_CACHE_DIR=str(tmp_path / "c"))
    result = venv.pip("wheel", "--no-deps", "--no-build-isolation", project, "-w", tmp_path / "dist", env=env, check=False)
    assert result.returncode != 0
    assert "error: wasm-build: model 'm' [frontend]: input 'y' is not an input of the model" in result.stdout
    assert "fix: the model's inputs are: x" in result.stdout


# -- with build isolation ---------------------------------------------------------------------


@pytest.mark.slow
def test_build_isolation_installs_wasm_build_from_find_links(venv: Venv, wheelhouse: Path, tmp_path: Path):
    """pip installs wasm-build (from a local wheel) and its dependencies (from the indexes) itself."""
    project = tiny_project(tmp_path / "proj", "tiny_isolated", model_table="smoke-test = false")
    result = venv.pip_wheel(
        project, tmp_path / "dist", "--find-links", str(wheelhouse), isolation=True,
        WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert "Installing build dependencies" in result.stdout
    assert "wasm-build: m: link" in result.stdout
    wheel = the_wheel(tmp_path / "dist")
    assert wheel.name == "tiny_isolated-0.1-py3-none-any.whl"
    assert "tiny_isolated/wasm/m/m.wasm" in wheel_names(wheel)


def test_validate_pyproject_checks_the_table(venv: Venv, tmp_path: Path):
    """The `validate_pyproject.tool_schema` entry point gives validate-pyproject our schema."""
    if venv.python_run("import validate_pyproject", check=False).returncode != 0:
        pytest.skip("validate-pyproject is not installed (it is in wasm-build's 'test' extra)")
    good = tiny_project(tmp_path / "good", "tiny_valid")
    bad = tiny_project(tmp_path / "bad", "tiny_invalid", model_table="smoke-tset = true")
    assert venv.python_run(f"import sys; sys.argv = ['validate-pyproject', {str(good / 'pyproject.toml')!r}]; "
                           "from validate_pyproject.cli import main; sys.exit(main())", check=False).returncode == 0
    result = venv.python_run(f"import sys; sys.argv = ['validate-pyproject', {str(bad / 'pyproject.toml')!r}]; "
                             "from validate_pyproject.cli import main; sys.exit(main())", check=False)
    assert result.returncode != 0
    assert "tool.wasm-build.models[0]" in result.stdout and "smoke-tset" in result.stdout
