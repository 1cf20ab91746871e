"""The one Jinja environment behind every generated file (C, Rust, CMake).

Templates live in `wasm_build/codegen/templates/`; filters for each target language's
string literals are registered here so any template can use them.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2


def c_string(text: object) -> str:
    """A C string literal holding the UTF-8 bytes of `text`: printable ASCII as is, quotes,
    backslashes and `?` (trigraphs) escaped, every other byte as a three-digit octal escape
    (JSON's `\\u00XX` and surrogate pairs are not valid C)."""
    parts = []
    for byte in str(text).encode("utf-8", "surrogatepass"):
        char = chr(byte)
        if char in '"\\?':
            parts.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            parts.append(char)
        else:
            parts.append(f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: object) -> str:
    """Text for inside a C block comment: one line of printable ASCII (the rest as
    `\\u{..}`), without the `*/` that would end the comment or a `/*` (-Wcomment)."""
    return _printable(str(text)).replace("*/", "*\\/").replace("/*", "/\\*")


def rust_string(text: object) -> str:
    """A Rust string literal: printable ASCII as is, quotes and backslashes escaped, the rest as \\u{..}."""
    return '"' + _printable(str(text), escape='"\\') + '"'


def rust_doc(text: object) -> str:
    """A string from a model file for a Rust doc comment (`//!`, `///`, Markdown): the
    `rust_string` literal, so one line without control characters, with backticks as
    `\\u{60}` too, so it cannot end a Markdown code span or fence. Put it in backticks:
    a code span shows HTML and Markdown as text."""
    return rust_string(text).replace("`", "\\u{60}")


def _printable(text: str, escape: str = "") -> str:
    """`text` as printable ASCII: characters in `escape` after a backslash, characters
    outside 0x20..0x7E as `\\u{hex}` (Rust's escape; in C comments only text)."""
    parts = []
    for char in text:
        if char in escape:
            parts.append("\\" + char)
        elif 0x20 <= ord(char) < 0x7F:
            parts.append(char)
        else:
            parts.append(f"\\u{{{ord(char):x}}}")
    return "".join(parts)


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wasm_build.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_string"] = c_string
    env.filters["c_comment"] = c_comment
    env.filters["rust_string"] = rust_string
    env.filters["rust_doc"] = rust_doc
    return env


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(context)
