"""Time units: every time in ehrfast is an integer count of microseconds (µs), as MEDS stores
``timestamp[us]``; a year is 365.25 days. Task files write durations as strings (``"12h"``,
``"10d"``, ``"730d"``), read by ``parse_duration``."""

from __future__ import annotations

import math
import re

from ehrfast.errors import InvalidInputError

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
US_PER_WEEK = 7 * US_PER_DAY
US_PER_YEAR = 31_557_600_000_000  # 365.25 days, exactly an integer number of µs

DURATION_UNITS = {
    "us": 1, "ms": 1_000, "s": US_PER_SECOND, "min": US_PER_MINUTE, "m": US_PER_MINUTE, "h": US_PER_HOUR,
    "d": US_PER_DAY, "w": US_PER_WEEK, "y": US_PER_YEAR,
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*")


def parse_duration(text: str | int | float, what: str = "duration") -> int:
    """A duration string — a number and a unit: ``us``, ``ms``, ``s``, ``min`` (or ``m``),
    ``h``, ``d``, ``w``, ``y`` (365.25 days); e.g. ``"12h"``, ``"10d"``, ``"1.5y"`` — as whole
    µs (rounded). A bare number is refused: it would not say its unit. ``what`` names the
    field in the error message."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise InvalidInputError(f"{what}: a duration is a string with a unit (e.g. '12h', '10d'), got {text!r}")
    match = _DURATION.fullmatch(text.lower())
    if match is None or match.group(2) not in DURATION_UNITS:
        raise InvalidInputError(f"{what}: cannot read {text!r} as a duration; write a number and a unit "
                                f"({', '.join(DURATION_UNITS)}), e.g. '12h', '10d' or '730d'")
    value = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if not math.isfinite(value):
        raise InvalidInputError(f"{what}: {text!r} is not a finite duration")
    return int(round(value))


def format_duration(us: int | float) -> str:
    """The shortest exact string ``parse_duration`` reads back (``"10d"``, ``"12h"``, ``"90s"``)."""
    us = int(round(us))
    for unit in ("y", "w", "d", "h", "min", "s", "ms"):
        if us and us % DURATION_UNITS[unit] == 0:
            return f"{us // DURATION_UNITS[unit]}{unit}"
    return f"{us}us"


__all__ = ["DURATION_UNITS", "US_PER_DAY", "US_PER_HOUR", "US_PER_MINUTE", "US_PER_SECOND", "US_PER_WEEK", "US_PER_YEAR",
           "format_duration", "parse_duration"]
