"""The one Jinja environment behind every generated file (C, Rust, CMake).

Templates live in `wasm_build/codegen/templates/`; filters for each target language's
string literals are registered here so any template can use them.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2

from . import escape


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wasm_build.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_string"] = escape.c_string
    env.filters["c_comment"] = escape.c_comment
    env.filters["rust_string"] = escape.rust_string
    env.filters["rust_doc"] = escape.rust_doc
    return env


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(context)
