"""Strings from model files become literals and comments that read back exactly and cannot end
what they are in (the C compiler and cargo check this end to end in tests/integration)."""

from __future__ import annotations

import ast

import pytest

from wasm_build.codegen.escape import c_comment, c_string, rust_doc, rust_string

NASTY = ['x */\n#define X 1\n/*', 'q"\\', "??/ ??= ??'", "\x00\x01\x7f\r\n", "\U0001f600 \u00e9", "`code` ]] ${x}", "/* //! */"]


def _c_decode(literal: str) -> bytes:
    """Read a C string literal the way a C compiler does (the escapes c_string emits)."""
    assert literal[0] == literal[-1] == '"'
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] in "01234567":
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(ord(body[i + 1]))
            i += 2
            continue
        out.append(ord(body[i]))
        i += 1
    return bytes(out)


@pytest.mark.parametrize("text", NASTY)
def test_c_string_reads_back_as_the_utf8_bytes(text):
    literal = c_string(text)
    assert _c_decode(literal) == text.encode("utf-8")
    assert "??" not in literal and "\n" not in literal


@pytest.mark.parametrize("text", NASTY)
def test_c_comment_cannot_end_or_split_a_comment(text):
    comment = c_comment(text)
    assert "*/" not in comment and "/*" not in comment and "??" not in comment
    assert all(0x20 <= ord(c) < 0x7F for c in comment)
    assert not comment.endswith("\\")


@pytest.mark.parametrize("text", NASTY)
def test_rust_string_and_doc(text):
    literal = rust_string(text)
    # Rust's \u{..} escapes read like Python's \U........ escapes; the rest is printable ASCII.
    decoded = ast.literal_eval(_rust_to_python(literal))
    assert decoded == text
    doc = rust_doc(text)
    assert "`" not in doc and "\n" not in doc and "\r" not in doc


def _rust_to_python(literal: str) -> str:
    out, i = [], 0
    while i < len(literal):
        if literal.startswith("\\u{", i):
            end = literal.index("}", i)
            out.append("\\U%08x" % int(literal[i + 3 : end], 16))
            i = end + 1
        else:
            out.append(literal[i])
            i += 1
    return "".join(out)
