"""Keyword spotting with models compiled to WebAssembly at build time.

The wheel carries the artifacts of both models under `kws_demo/wasm/`
(`kws/kws.wasm`, `kws/libkws.a`, `kws/kws.h`, `kws/kws.json`, and the same for
`mlp`); this module finds them with `importlib.resources` and runs the WASI
reactors with `wasm_build.WasmModel` (wasmtime).

    >>> import numpy as np, kws_demo
    >>> kws_demo.spot_keyword(np.zeros((1, 1, 49, 40), np.float32))
    'yes'   # (random weights: any of LABELS)
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ("silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MODELS = ("kws", "mlp")

_files = ExitStack()  # keeps extracted copies alive when the package is imported from a zip


def artifact(model: str, filename: str) -> Path:
    """Path of one artifact of `model` (e.g. artifact("kws", "kws.wasm"))."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; this package has {', '.join(MODELS)}")
    resource = resources.files(__name__) / "wasm" / model / filename
    if not resource.is_file():
        raise FileNotFoundError(f"{filename} is missing from kws_demo/wasm/{model}: was the package built by wasm-build?")
    return Path(_files.enter_context(resources.as_file(resource)))


def manifest(model: str) -> dict[str, Any]:
    """The build manifest: inputs, outputs, versions and options of `model`."""
    return json.loads(artifact(model, f"{model}.json").read_text())


@lru_cache(maxsize=None)
def load(model: str):
    """A `wasm_build.WasmModel` running the model's reactor module."""
    from wasm_build import WasmModel

    return WasmModel(artifact(model, f"{model}.wasm"))


def kws_logits(mfcc: np.ndarray) -> np.ndarray:
    """Logits [1, 12] for 49 frames of 40 MFCC features ([1, 1, 49, 40] float32)."""
    (logits,) = load("kws").run({"x": np.asarray(mfcc, dtype=np.float32).reshape(1, 1, 49, 40)})
    return logits


def spot_keyword(mfcc: np.ndarray) -> str:
    """The most likely keyword for one window of MFCC features."""
    return LABELS[int(np.argmax(kws_logits(mfcc)))]


def mlp_scores(features: np.ndarray) -> np.ndarray:
    """Class probabilities [1, 8] of the Relax MLP for a [1, 64] feature vector."""
    (scores,) = load("mlp").run({"features": np.asarray(features, dtype=np.float32).reshape(1, 64)})
    return scores
