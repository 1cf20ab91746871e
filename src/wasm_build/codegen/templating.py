"""The one Jinja environment behind every generated file (C, Rust, CMake).

Templates live in `wasm_build/codegen/templates/`; filters for each target language's
string literals are registered here so any template can use them.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2


def c_string(text: object) -> str:
    """A C string literal (JSON escapes are valid C escapes)."""
    return json.dumps(str(text))


def rust_string(text: object) -> str:
    """A Rust string literal: printable ASCII as is, quotes and backslashes escaped, the rest as \\u{..}."""
    parts = []
    for char in str(text):
        if char in '"\\':
            parts.append("\\" + char)
        elif 0x20 <= ord(char) < 0x7F:
            parts.append(char)
        else:
            parts.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(parts) + '"'


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wasm_build.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_string"] = c_string
    env.filters["rust_string"] = rust_string
    return env


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(context)
