"""JSON schema of `[tool.wasm-build]`, generated from the settings dataclasses.

The checked-in copy `resources/wasm-build.schema.json` is what editors and
`validate-pyproject` (entry point `validate_pyproject.tool_schema`) read;
`tests/test_project.py` keeps it equal to `generate()`. Regenerate it with
`wasm-build schema > src/wasm_build/resources/wasm-build.schema.json`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from importlib import resources
from typing import Any, Literal, Union

from .settings import ModelSettings, ProjectSettings

SCHEMA_ID = "https://github.com/wasm-build/wasm-build/blob/main/wasm_build/resources/wasm-build.schema.json"
RESOURCE = "wasm-build.schema.json"

_SCALARS = {str: "string", bool: "boolean", int: "integer", float: "number"}
_C_IDENTIFIER = "^[A-Za-z_][A-Za-z0-9_]*$"


def _type_schema(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        # Optional keys are simply left out in TOML, which has no null.
        (inner,) = [a for a in args if a is not type(None)]
        return _type_schema(inner)
    if origin is Literal:
        return {"enum": list(args)}
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp)
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    raise TypeError(f"no JSON schema for settings type {tp!r}")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING and field.default is not None:
        return list(field.default) if isinstance(field.default, tuple) else field.default
    return dataclasses.MISSING


def dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        key = field.name.replace("_", "-")
        schema: dict[str, Any] = {}
        if "help" in field.metadata:
            schema["description"] = field.metadata["help"]
        schema.update(_type_schema(hints[field.name]))
        if "enum" in field.metadata:
            schema["enum"] = list(field.metadata["enum"])
        default = _default(field)
        if default is not dataclasses.MISSING and not dataclasses.is_dataclass(default) and default != []:
            schema["default"] = default
        if cls is ModelSettings and field.name == "name":
            schema["pattern"] = _C_IDENTIFIER
        properties[key] = schema
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(key)
    result: dict[str, Any] = {
        "type": "object",
        "description": inspect.cleandoc(cls.__doc__ or ""),
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        result["required"] = required
    return result


def generate() -> dict[str, Any]:
    """The schema as built from the dataclasses now."""
    schema = dataclass_schema(ProjectSettings)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "wasm-build settings: the [tool.wasm-build] table of pyproject.toml",
        **schema,
    }


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def tool_schema(tool_name: str = "wasm-build") -> dict[str, Any]:
    """Entry point for validate-pyproject: the shipped schema of `[tool.wasm-build]`."""
    return json.loads((resources.files("wasm_build") / "resources" / RESOURCE).read_text(encoding="utf-8"))


__all__ = ["generate", "tool_schema", "dumps", "dataclass_schema"]
