"""Durations, sizes and percentages as admins write them ("2s", "500ms", "32k", "50%") and back.

Parsing is strict on purpose: a timeout typed as "30 sec" or "-1s" is rejected
with the list of valid forms rather than silently read as something else.
Every function here is pure.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from bascule.config.findings import InvalidValueError, show

DURATION_FORMS = '"2s", "500ms", "1m", "1h", "1.5s" or a number of seconds'
# Longer than any sane timeout, and far below what event loops can arm (uvloop
# converts delays to 64-bit milliseconds): a larger value is a typo.
MAX_DURATION = 365 * 24 * 3600.0
SIZE_FORMS = '32768, "32k", "32KiB", "1m" or "1MiB"'
PERCENT_FORMS = '"50%" or "12.5%"'

_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>ms|s|m|h)?$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# As in HAProxy and nginx, "k" means 1024 bytes, not 1000; the "B"/"iB" suffixes
# are accepted so that "32KiB" and "32KB" both read the way an admin means them.
_SIZE = re.compile(r"^(?P<number>\d+)\s*(?:(?P<unit>[kmg])(?:i?b)?|b)?$", re.IGNORECASE)
_BYTES_PER_UNIT = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}

_PERCENT = re.compile(r"^(?P<number>\d+(?:\.\d+)?|\.\d+)\s*%$")


def parse_duration(value: object) -> float:
    """Return `value` in seconds: a number of seconds, or text such as "2s" or "500ms"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValueError(f"{show(value)} is not a duration", f"write {DURATION_FORMS}")
    try:
        seconds = _parse_duration_text(value) if isinstance(value, str) else float(value)
    except OverflowError:
        seconds = math.inf
    if math.isnan(seconds):
        raise InvalidValueError(f"{show(value)} is not a duration", f"write {DURATION_FORMS}")
    if seconds < 0:
        raise InvalidValueError(f"{show(value)} is negative", f"write {DURATION_FORMS}")
    if seconds > MAX_DURATION:
        raise InvalidValueError(
            f"{show(value)} is longer than a year", "use a duration of at most 8760h"
        )
    return seconds


def _parse_duration_text(text: str) -> float:
    stripped = text.strip()
    if stripped.startswith("-"):
        raise InvalidValueError(f"{show(text)} is negative", f"write {DURATION_FORMS}")
    match = _DURATION.match(stripped)
    if match is None:
        raise InvalidValueError(f"{show(text)} is not a duration", f"write {DURATION_FORMS}")
    number = float(match["number"])
    unit = match["unit"] or "s"
    # Divide for milliseconds rather than multiply by 0.001: n / 1000 is the value
    # format_duration checks against, so "7ms" round-trips exactly.
    return number / 1000 if unit == "ms" else number * _SECONDS_PER_UNIT[unit]


def format_duration(seconds: float) -> str:
    """Shortest text that `parse_duration` reads back as exactly `seconds`."""
    for unit in ("h", "m"):
        factor = _SECONDS_PER_UNIT[unit]
        count = seconds / factor
        if seconds != 0 and count == int(count) and int(count) * factor == seconds:
            return f"{int(count)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    milliseconds = seconds * 1000
    if milliseconds == int(milliseconds) and int(milliseconds) / 1000 == seconds:
        return f"{int(milliseconds)}ms"
    # repr() is the shortest exact text of a float; Decimal spells it without an
    # exponent ("1e-05" would not parse back).
    return f"{Decimal(repr(seconds)):f}s"


def parse_size(value: object) -> int:
    """Return `value` in bytes: a whole number of bytes, or text such as "32k" or "32KiB"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValueError(f"{show(value)} is not a size", f"write {SIZE_FORMS}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value.strip())
        if match is None:
            raise InvalidValueError(f"{show(value)} is not a size", f"write {SIZE_FORMS}")
        unit = match["unit"].lower() if match["unit"] else None
        size = int(match["number"]) * _BYTES_PER_UNIT[unit]
    if size < 0:
        raise InvalidValueError(f"{show(value)} is negative", f"write {SIZE_FORMS}")
    return size


def format_size(size: int) -> str:
    """Shortest text that `parse_size` reads back as exactly `size` bytes."""
    for unit in ("g", "m", "k"):
        factor = _BYTES_PER_UNIT[unit]
        if size != 0 and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_percent(value: object) -> float:
    """Return the number of `value`, text such as "50%" or "12.5%" (the sign is required).

    Callers check the range: 0-100 for a share of servers, 0-50 for jitter.
    """
    if not isinstance(value, str):
        raise InvalidValueError(f"{show(value)} is not a percentage", f"write {PERCENT_FORMS}")
    stripped = value.strip()
    if stripped.startswith("-"):
        raise InvalidValueError(f"{show(value)} is negative", f"write {PERCENT_FORMS}")
    match = _PERCENT.match(stripped)
    if match is None:
        raise InvalidValueError(f"{show(value)} is not a percentage", f"write {PERCENT_FORMS}")
    return float(match["number"])


def format_percent(percent: float) -> str:
    """ "50%", "12.5%": the shortest text `parse_percent` reads back as `percent`."""
    if percent == int(percent):
        return f"{int(percent)}%"
    return f"{Decimal(repr(percent)):f}%"
