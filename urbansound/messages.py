"""User values and name lists cut to one line for error messages (a leaf: imports nothing of urbansound)."""

from __future__ import annotations

from typing import Any

QUOTE_LIMIT = 80
"""Characters of a user's value a one-line message quotes (a 6 KB JSON list is not one line)."""


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full
    length said: ``'["a", "b", ...' (6,000 characters)``."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def names_excerpt(names, shown: int = 10, limit: int = 2 * QUOTE_LIMIT) -> str:
    """A list of names for a message: all of them when few and short, else the first
    ones (at most ``shown``, about ``limit`` characters) and how many there are
    (``['a', 'b', 'c', ...] (300 names)``)."""
    names = list(names)
    if len(names) <= shown and len(repr(names)) <= limit:
        return repr(names)
    head: list[str] = []
    while len(head) < min(shown, len(names)) and len(repr(head + names[len(head) :][:1])) <= limit:
        head.append(names[len(head)])
    first = ", ".join(repr(n) for n in head) if head else quoted(names[0]) if names else ""
    return f"[{first}, ...] ({len(names)} names)"
