"""Strings from model files and configs are data, never code: the escapes for every language
they land in. Each function returns text that, pasted where its name says, reads back as the
original string and cannot end the literal or comment it is in, whatever the input holds
(quotes, `*/`, newlines, backslashes, trigraphs, control characters, any Unicode)."""

from __future__ import annotations

import json

_PRINTABLE = range(0x20, 0x7F)


def c_string(text: object) -> str:
    """A C string literal holding `text`'s UTF-8 bytes: printable ASCII as is, `"`, `\\` and `?`
    (trigraphs: `-std=c11` has them) escaped, every other byte as a three-digit octal escape
    (C's `\\u` escapes cannot name control characters)."""
    parts = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            parts.append("\\" + char)
        elif byte in _PRINTABLE:
            parts.append(char)
        else:
            parts.append(f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: object) -> str:
    """`text` for the inside of a C comment (`/* */` or `//`), on one line: no `*/`, no line
    break or line splice (a backslash, also from a `??/` trigraph), no character a compiler
    may reject; anything else reads as written, the rest as `\\u{...}`."""
    parts = []
    previous = ""
    for char in str(text):
        code = ord(char)
        # `*/` ends the comment, `/*` inside one warns (-Wcomment), `??/` is a backslash (a trigraph).
        pair = previous + char
        if char == "\\" or pair in ("*/", "/*", "??") or code not in _PRINTABLE:
            parts.append(f"\\u{{{code:x}}}")
        else:
            parts.append(char)
        previous = char
    return "".join(parts)


def rust_string(text: object) -> str:
    """A Rust string literal: printable ASCII as is, quotes and backslashes escaped, the rest as \\u{..}."""
    parts = []
    for char in str(text):
        if char in '"\\':
            parts.append("\\" + char)
        elif ord(char) in _PRINTABLE:
            parts.append(char)
        else:
            parts.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(parts) + '"'


def rust_doc(text: object) -> str:
    """A string from a model file for a Rust doc comment (`//!`, `///`, Markdown): the
    `rust_string` literal, so one line without control characters, with backticks as
    `\\u{60}` too, so it cannot end a Markdown code span or fence. Put it in backticks:
    a code span shows HTML and Markdown as text."""
    return rust_string(text).replace("`", "\\u{60}")


def json_string(text: object) -> str:
    """A JSON string (ASCII only)."""
    return json.dumps(str(text), ensure_ascii=True)
