"""The argument check every module shares: one mistake, one message."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int"]


def check_int(value: Any, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``; else raise ``ValueError``.

    ``hint`` follows "must be a positive int" in the message, e.g. ``" (the number of degradation steps)"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{hint}; got {value!r}.")
    return value
