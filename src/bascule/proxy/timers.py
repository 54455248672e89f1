"""A lazy per-connection deadline timer.

Re-arming a loop timer on every read would cost a timer-heap insert per
packet. Instead the owner just moves `deadline`; the one armed handle fires,
notices the deadline moved later and re-arms itself for it. Only moving a
deadline *earlier* than the armed time re-arms immediately.

Deadlines are in `now()` time: CLOCK_MONOTONIC, the clock uvloop's `loop.time()`
reads too (in whole milliseconds, so a loop timer set for a deadline fires at it or
up to a millisecond after). The data plane reads it several times per request, and
`loop.time()`, a method of a Python object, costs compiled code a method lookup and a
call each time: about three times as many instructions as this plain function.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

now: Final[Callable[[], float]] = time.monotonic


class LazyTimer:
    """Calls `on_expire()` once the current deadline passes (`now()` time)."""

    __slots__ = ("_armed_at", "_handle", "_loop", "_on_expire", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expire: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expire = on_expire
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self.deadline: float | None = None

    def set(self, deadline: float | None) -> None:
        """Expire at `deadline` (`now()` time), or never when None."""
        self.deadline = deadline
        if deadline is None:
            return
        if self._handle is None or deadline < self._armed_at:
            self._arm(deadline)

    def set_in(self, seconds: float) -> None:
        self.set(now() + seconds)

    def cancel(self) -> None:
        self.deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self.deadline
        if deadline is None:
            return
        if now() >= deadline:
            self.deadline = None
            self._on_expire()
        else:
            self._arm(deadline)
