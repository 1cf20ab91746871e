"""The one walk over the settings' type hints.

Reading TOML tables, parsing `-C KEY=VALUE` text and writing the JSON schema all
need to know what a field holds; `field_type` answers once, as a small tree."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

SCALARS: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


@dataclass(frozen=True)
class FieldType:
    """What a settings field holds.

    kind: "scalar" (`python` is str/bool/int/float), "literal" (one of `choices`),
    "settings" (`python` is a settings dataclass), "list" (of `item`), "table"
    (string keys to `item`), "either" (one of the scalar types in `options`, e.g. a
    dimension that is a size or a name). `optional` when None is allowed (TOML leaves
    the key out).
    """

    kind: Literal["scalar", "literal", "settings", "list", "table", "either"]
    python: Any = None
    choices: tuple[Any, ...] = ()
    item: FieldType | None = None
    optional: bool = False
    options: tuple[FieldType, ...] = ()


def field_type(tp: Any) -> FieldType:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        optional = type(None) in args
        if len(inner) == 1:
            return dataclasses.replace(field_type(inner[0]), optional=optional)
        return FieldType("either", options=tuple(field_type(a) for a in inner), optional=optional)
    if origin is Literal:
        return FieldType("literal", choices=args)
    if dataclasses.is_dataclass(tp):
        return FieldType("settings", python=tp)
    if origin is tuple:
        return FieldType("list", item=field_type(args[0]))
    if origin is dict:
        return FieldType("table", item=field_type(args[1]))
    if tp in SCALARS:
        return FieldType("scalar", python=tp)
    raise TypeError(f"unsupported settings type {tp!r}")


def fields_of(cls: type) -> dict[str, tuple[dataclasses.Field, FieldType]]:
    """A settings dataclass's fields by TOML key (kebab-case), with their types."""
    hints = typing.get_type_hints(cls)
    return {toml_key(f.name): (f, field_type(hints[f.name])) for f in dataclasses.fields(cls)}


def toml_key(name: str) -> str:
    """`smoke_test` -> `smoke-test`: TOML spells keys in kebab-case, Python in snake_case."""
    return name.replace("_", "-")
