"""The argument checks every module shares: one mistake, one message."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_int", "check_seed", "check_positive_float", "SEED_MAX"]

#: The largest seed torch's generators take (``torch.manual_seed`` packs it into 64 bits).
SEED_MAX = 2**64 - 1


def check_int(value: Any, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``; else raise ``ValueError``.

    ``hint`` follows "must be a positive int" in the message, e.g. ``" (the number of degradation steps)"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{hint}; got {value!r}.")
    return value


def check_seed(value: Any, name: str = "seed", *, maximum: int = SEED_MAX) -> int:
    """Return ``value`` if it is an int in ``0..maximum``; else ``ValueError`` (torch would overflow, bare)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        limit = "2**64 - 1" if maximum == SEED_MAX else f"{maximum:,}"
        raise ValueError(f"{name} must be an int from 0 to {limit} (what the random generators accept); got "
                         f"{value!r}. Pick a smaller non-negative number, e.g. {name}=0.")
    return value


def check_positive_float(value: Any, name: str, *, hint: str = "") -> float:
    """Return ``value`` as a float if it is a finite real number > 0 (not a bool); else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0{hint}; got {value!r}.")
    return float(value)
