"""JSON schema of `[tool.wasm-build]`, generated from the settings dataclasses.

The checked-in copy `resources/wasm-build.schema.json` is what editors and
`validate-pyproject` (entry point `validate_pyproject.tool_schema`) read;
`tests/unit/test_project.py` keeps it equal to `generate()`. Regenerate it with
`wasm-build schema > src/wasm_build/resources/wasm-build.schema.json`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from importlib import resources
from typing import Any

from .settings import ModelSettings, ProjectSettings
from .types import SCALARS, FieldType, fields_of

SCHEMA_ID = "https://github.com/wasm-build/wasm-build/blob/main/wasm_build/resources/wasm-build.schema.json"
RESOURCE = "wasm-build.schema.json"

_C_IDENTIFIER = "^[A-Za-z_][A-Za-z0-9_]*$"


def _type_schema(ft: FieldType) -> dict[str, Any]:
    # Optional keys are simply left out in TOML, which has no null: `optional` adds nothing.
    if ft.kind == "literal":
        return {"enum": list(ft.choices)}
    if ft.kind == "settings":
        return dataclass_schema(ft.python)
    if ft.kind == "list":
        return {"type": "array", "items": _type_schema(ft.item)}
    if ft.kind == "table":
        return {"type": "object", "additionalProperties": _type_schema(ft.item)}
    if ft.kind == "either":
        return {"type": [SCALARS[option.python] for option in ft.options]}
    return {"type": SCALARS[ft.python]}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING and field.default is not None:
        return list(field.default) if isinstance(field.default, tuple) else field.default
    return dataclasses.MISSING


def dataclass_schema(cls: type) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for key, (field, ft) in fields_of(cls).items():
        schema: dict[str, Any] = {}
        if "help" in field.metadata:
            schema["description"] = field.metadata["help"]
        schema.update(_type_schema(ft))
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
