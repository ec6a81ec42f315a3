"""Small helpers for the words of log lines and messages."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 scheduling key"``, ``"2 scheduling keys"``; ``plural_form`` defaults to ``singular + "s"``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
