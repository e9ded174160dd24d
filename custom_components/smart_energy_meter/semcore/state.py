"""Reading back the stored form of the detectors' state: every value checked, nothing trusted.

What a run stored is read by a later one, possibly of another version, from a file anyone can
edit. Each `from_dict` takes its values through these checks and raises StateError on anything
unexpected; the caller then ignores the whole stored state rather than run on part of it.

Pure Python: no Home Assistant import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any


class StateError(ValueError):
    """A stored state that cannot be continued from (corrupt, foreign or of another version)."""


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A JSON object."""
    if not isinstance(value, Mapping):
        raise StateError(f"{what}: not an object")
    return value


def sequence(value: Any, what: str, length: int | None = None) -> Sequence[Any]:
    """A JSON array (of `length` items when given)."""
    if not isinstance(value, list | tuple) or (length is not None and len(value) != length):
        raise StateError(f"{what}: not an array" + ("" if length is None else f" of {length}"))
    return value


def number(value: Any, what: str, *, minimum: float | None = None) -> float:
    """A finite number (at least `minimum`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateError(f"{what}: not a finite number")
    if minimum is not None and value < minimum:
        raise StateError(f"{what}: below {minimum}")
    return float(value)


def optional_number(value: Any, what: str, *, minimum: float | None = None) -> float | None:
    """A finite number or null."""
    return None if value is None else number(value, what, minimum=minimum)


def count(value: Any, what: str) -> int:
    """A whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateError(f"{what}: not a count")
    return value


def whole(value: Any, what: str) -> int:
    """A whole number (a window index may be of any sign)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError(f"{what}: not a whole number")
    return value


def flag(value: Any, what: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise StateError(f"{what}: not true or false")
    return value


def member[E: StrEnum](enum: type[E], value: Any, what: str) -> E:
    """A value of a string enumeration."""
    try:
        return enum(value)
    except ValueError:
        raise StateError(f"{what}: {value!r} is not one of {[e.value for e in enum]}") from None
