"""Every architecture of the zoo, by name. Importing this imports torch, not the model libraries."""

from __future__ import annotations

from ..spec import Case, ZooModel
from . import audio, dense, multi_io, nlp, ops, vision

MODELS: dict[str, ZooModel] = {}
for _module in (vision, dense, nlp, audio, multi_io, ops):
    for _model in _module.MODELS:
        if _model.name in MODELS:
            raise ValueError(f"two zoo models are named {_model.name!r}")
        MODELS[_model.name] = _model


def all_cases() -> list[Case]:
    return [case for model in MODELS.values() for case in model.cases()]


def fast_cases() -> list[Case]:
    """The CI tier: the ONNX case of each `fast` model, the int8 case of each `fast_int8` one."""
    tier = [Case(model, "onnx") for model in MODELS.values() if model.fast]
    return tier + [Case(model, "int8") for model in MODELS.values() if model.fast_int8]


def case(case_id: str) -> Case:
    """One case by its id (`NAME`, `NAME@dynamo`, `NAME@pt2`, `NAME@int8`)."""
    for candidate in all_cases():
        if candidate.id == case_id:
            return candidate
    raise KeyError(f"no zoo case {case_id!r}")


def select(names: list[str] | None = None, *, fast: bool = False) -> list[Case]:
    """Cases by model name (every format) or case id (`NAME@pt2`); all, or the fast tier."""
    cases = fast_cases() if fast else all_cases()
    if not names:
        return cases
    by_id = {case.id: case for case in all_cases()}
    chosen: list[Case] = []
    for name in names:
        matches = [c for c in cases if c.model.name == name] or ([by_id[name]] if name in by_id else [])
        if not matches:
            raise KeyError(f"no zoo model or case {name!r}; see `python bench/zoo/run.py --list`")
        chosen += [c for c in matches if c not in chosen]
    return chosen
