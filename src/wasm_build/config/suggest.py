""""Did you mean …?": the one way wasm-build suggests a fix for a misspelt name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], *, cutoff: float = 0.5) -> str | None:
    """The choice closest to `word`, if any is close enough."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], *, listing: str, cutoff: float = 0.5) -> str:
    """`did you mean 'x'?` for a close choice, else `listing` followed by every choice
    (e.g. `valid keys: a, b`), so the message always says what would have worked."""
    choices = [str(c) for c in choices]
    match = closest(word, choices, cutoff=cutoff)
    if match is not None:
        return f"did you mean '{match}'?"
    return f"{listing}: {', '.join(choices) if choices else 'none'}"
