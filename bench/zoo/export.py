"""Exports of zoo models, cached by a hash of the entry's definition and the libraries' versions.

A case's file is `<cache>/<model>/<digest>/model.onnx` (TorchScript exporter, opset 17),
`model.dynamo.onnx` (dynamo exporter, opset 18), `model.pt2` (`torch.export`) or
`model.int8.v2.onnx` (`model.onnx` quantized, quantize.py). Each export is
checked once against PyTorch: when onnxruntime disagrees with eager PyTorch on an exported ONNX
graph, the exporter (not wasm-build) is at fault, and the case fails at the `export` stage. A
quantized model is checked to run in onnxruntime (it is its own reference: quantized, it cannot
match PyTorch); a model the quantizer cannot quantize fails at `export` too.
A failed export is cached too, with its message: it fails the same way until something changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .compare import compare_outputs
from .libraries import versions
from .spec import SEED, Case, Format, ZooModel

ONNX_OPSET = 17
DYNAMO_OPSET = 18  # the dynamo exporter cannot convert its graphs down to 17 (Squeeze/Unsqueeze axes)
# Bump when the quantization recipe (quantize.py) changes: only the int8 files are then redone.
_INT8_VERSION = 2
_FILES: dict[Format, str] = {"onnx": "model.onnx", "onnx-dynamo": "model.dynamo.onnx", "pt2": "model.pt2",
                             "int8": f"model.int8.v{_INT8_VERSION}.onnx"}
# Bump when this module changes how files are produced: every cached export is then redone.
_EXPORT_VERSION = 1


class ExportError(Exception):
    """The model could not be exported, or its export disagrees with PyTorch."""


@dataclass(frozen=True)
class Exported:
    case_id: str
    path: Path
    seconds: float  # 0.0 when it came from the cache


def digest(model: ZooModel) -> str:
    text = f"{_EXPORT_VERSION}\n{json.dumps(versions(), sort_keys=True)}\n{model.definition()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ExportCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def folder(self, model: ZooModel) -> Path:
        return self.directory / model.name / digest(model)

    def export(self, case: Case) -> Exported:
        """The case's file, exported now or found in the cache; raises ExportError."""
        folder = self.folder(case.model)
        path = folder / _FILES[case.format]
        failure = folder / f"{path.name}.error"
        if path.is_file():
            return Exported(case.id, path, 0.0)
        if failure.is_file():
            raise ExportError(failure.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            if case.format == "int8":
                _quantize(case.model, self.export(Case(case.model, "onnx")).path, path)
            else:
                _export(case.model, case.format, path)
        except ExportError as exc:
            _write_atomically(failure, str(exc).encode())
            raise
        except Exception as exc:  # any exporter failure is this case's result, not the zoo's crash
            message = f"{type(exc).__name__}: {_last_line(str(exc))}"
            _write_atomically(failure, message.encode())
            raise ExportError(message) from exc
        return Exported(case.id, path, time.perf_counter() - start)


def torch_inputs(model: ZooModel) -> tuple:
    import torch

    return tuple(torch.from_numpy(array) for array in model.sample_inputs().values())


def instantiate(model: ZooModel):
    """The seeded module in eval mode, its weights made informative (see weights.py)."""
    import torch

    from .weights import make_informative

    torch.manual_seed(SEED)
    return make_informative(model.make(), model)


def _export(model: ZooModel, fmt: Format, path: Path) -> None:
    import torch

    module = instantiate(model)
    args = torch_inputs(model)
    scratch = path.with_name(f".{os.getpid()}.{path.name}")  # same suffix: torch.export.save wants .pt2
    with _quiet(), torch.no_grad(), _mha_fastpath(False):
        if fmt == "pt2":
            torch.export.save(torch.export.export(module, args), str(scratch))
        else:
            torch.onnx.export(
                module, args, str(scratch),
                dynamo=fmt == "onnx-dynamo",
                opset_version=DYNAMO_OPSET if fmt == "onnx-dynamo" else ONNX_OPSET,
                input_names=[t.name for t in model.inputs],
                output_names=list(model.outputs),
                **({"external_data": False} if fmt == "onnx-dynamo" else {}),
            )
            _check_against_torch(model, module, args, scratch)
    os.replace(scratch, path)


def _quantize(model: ZooModel, source: Path, path: Path) -> None:
    """`source` quantized into `path`, once onnxruntime has run it on the compared inputs and its
    outputs are finite where the float model's are."""
    import numpy as np

    from .quantize import quantize
    from .reference import run_onnxruntime

    scratch = path.with_name(f".{os.getpid()}.{path.name}")
    quantize(model, source, scratch)
    inputs = model.sample_inputs()
    try:
        got = run_onnxruntime(scratch, inputs)
    except Exception as exc:
        scratch.unlink()
        raise ExportError(f"onnxruntime cannot run the quantized model: {type(exc).__name__}: {_last_line(str(exc))}") from exc
    want = run_onnxruntime(source, inputs)
    lost = [i for i, (w, g) in enumerate(zip(want, got)) if g.dtype.kind == "f" and (np.isfinite(w) & ~np.isfinite(g)).any()]
    if lost:
        scratch.unlink()
        raise ExportError(f"the quantized model's output {lost[0]} is not finite where the float model's is")
    os.replace(scratch, path)


def _check_against_torch(model: ZooModel, module, args: tuple, onnx_path: Path) -> None:
    from .reference import run_onnxruntime

    eager = module(*args)
    eager = [eager] if not isinstance(eager, (tuple, list)) else list(eager)
    expected = [t.detach().numpy() for t in eager]
    got = run_onnxruntime(onnx_path, model.sample_inputs())
    verdict = compare_outputs(expected, got)
    if not verdict.ok:
        raise ExportError(f"onnxruntime disagrees with PyTorch on the exported graph: {verdict.summary}")


@contextlib.contextmanager
def _mha_fastpath(enabled: bool) -> Iterator[None]:
    """nn.TransformerEncoder's fused fast path has no ONNX export; turn it off while exporting."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn about tracing and print progress: none of it is the case's result."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _write_atomically(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def parameter_bytes(onnx_path: Path) -> int:
    """Bytes of an ONNX model's constant tensors (the main graph's initializers and Constant
    nodes): what the artifact's weights should come to, give or take packing and padding."""
    import numpy as np
    import onnx
    from onnx import helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    tensors = [*model.graph.initializer]
    tensors += [a.t for node in model.graph.node if node.op_type == "Constant" for a in node.attribute if a.name == "value"]
    return sum(int(np.prod(t.dims, dtype=np.int64)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize for t in tensors)


def op_types(onnx_path: Path) -> list[str]:
    """The distinct operator types of an ONNX model, subgraphs and local functions included."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    found: set[str] = set()

    def walk(graph) -> None:
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
            for attribute in node.attribute:
                for subgraph in [attribute.g, *attribute.graphs]:
                    if subgraph.node:
                        walk(subgraph)

    walk(model.graph)
    for function in model.functions:
        walk(function)
    local = {f"{function.domain}.{function.name}" for function in model.functions}
    return sorted(found - local)

