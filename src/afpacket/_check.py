"""Argument checks for the public API: a wrong type is a ``TypeError``, a wrong value an
:class:`~afpacket.errors.ArgumentError`, and both name the function and the parameter, so a bad
argument fails at the call with one clear line instead of a traceback from deep inside a loop.

Each check is called once per call of a public function, never per packet.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from collections.abc import Iterable

from .errors import ArgumentError

#: The longest duration or rotation period accepted, in seconds (about 31 years): beyond it a deadline
#: is no longer a usable number (``1e308`` seconds overflows when turned into milliseconds or nanoseconds).
MAX_SECONDS = 1e9
#: The longest wait a ``timeout`` may ask for: poll() takes a C int of milliseconds, so about 24.8 days.
MAX_WAIT = (2**31 - 1) // 1000
#: Parameters that end up as one poll() timeout, so :data:`MAX_WAIT` bounds them.
_WAITS = frozenset({"timeout", "poll_timeout"})
#: The largest count accepted: what a C ``Py_ssize_t`` holds (``itertools.islice``, ``range`` and the C
#: kernels take no more); no capture or file gets anywhere near it, so beyond it a count is a mistake.
MAX_COUNT = sys.maxsize


def _type_name(value: object) -> str:
    return type(value).__name__


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _short(value: object) -> str:
    """``repr(value)``, cut short: a message must stay one readable line even for a 400-digit number."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def seconds(
    where: str, name: str, value: object, *, allow_zero: bool = True, optional: bool = True
) -> float | None:
    """``value`` as float seconds, or None. Refuses booleans, non-numbers, NaN, infinities,
    negative values (and 0 unless ``allow_zero``), and values above :data:`MAX_SECONDS`
    (:data:`MAX_WAIT` for a ``timeout``), which would overflow further down."""
    none = " (None for no limit)" if optional else ""
    if value is None:
        if not optional:
            raise TypeError(f"{_at(where)}{name} must be a number of seconds, not None")
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        or_none = " or None" if optional else ""
        raise TypeError(f"{_at(where)}{name} must be a number of seconds{or_none}, not {_type_name(value)}")
    limit = MAX_WAIT if name in _WAITS else MAX_SECONDS
    try:
        f = float(value)
    except OverflowError:  # an int (or Fraction, Decimal) too large for a float is above any limit
        raise ArgumentError(
            f"{_at(where)}{name} must be at most {limit:.0f} seconds{none}, got {_short(value)}"
        ) from None
    if math.isnan(f) or math.isinf(f) or f < 0 or (f == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ArgumentError(
            f"{_at(where)}{name} must be a finite number of seconds {bound}{none}, got {value!r}"
        )
    if f > limit:
        raise ArgumentError(f"{_at(where)}{name} must be at most {limit:.0f} seconds{none}, got {value!r}")
    return f


def count(
    where: str, name: str, value: object, *, allow_zero: bool = True, optional: bool = True,
    maximum: int = MAX_COUNT,
) -> int | None:
    """``value`` as an int >= 0 (> 0 unless ``allow_zero``) and at most ``maximum`` (by default
    :data:`MAX_COUNT`; give the field's own limit, such as ``0xFFFFFFFF`` for a 32-bit file field, where a
    larger value would fail later as a ``struct.error``), or None when ``optional``."""
    if value is None:
        if not optional:
            raise TypeError(f"{_at(where)}{name} must be an integer, not None")
        return None
    or_none, none = (" or None", " (None for no limit)") if optional else ("", "")
    if isinstance(value, bool):
        raise TypeError(f"{_at(where)}{name} must be an integer{or_none}, not bool")
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{_at(where)}{name} must be an integer{or_none}, not {_type_name(value)}") from None
    if n < 0 or (n == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ArgumentError(f"{_at(where)}{name} must be {bound}{none}, got {_short(n)}")
    if n > maximum:
        raise ArgumentError(f"{_at(where)}{name} must be at most {maximum}{none}, got {_short(n)}")
    return n


def flag(where: str, name: str, value: object) -> bool:
    """``value`` as a bool; only True, False (and 0/1 integers) are accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{_at(where)}{name} must be True or False, not {value!r}")


def choice(where: str, name: str, value: object, accepted: Iterable[object]) -> object:
    """``value`` if it is one of ``accepted``; otherwise an error listing them."""
    options = tuple(accepted)
    if value in options and type(value) in {type(o) for o in options}:
        return value
    listed = ", ".join(repr(o) for o in options)
    if not isinstance(value, tuple({type(o) for o in options})):
        raise TypeError(f"{_at(where)}{name} must be one of {listed}, not {_type_name(value)}")
    raise ArgumentError(f"{_at(where)}{name} must be one of {listed}, got {value!r}")
