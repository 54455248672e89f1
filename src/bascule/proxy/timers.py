"""A lazy per-connection deadline timer.

Re-arming a loop timer on every read would cost a timer-heap insert per
packet. Instead the owner just moves `deadline`; the one armed handle fires,
notices the deadline moved later and re-arms itself for it. Only moving a
deadline *earlier* than the armed time re-arms immediately.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LazyTimer:
    """Calls `on_expire()` once the current deadline passes (loop time)."""

    __slots__ = ("_armed_at", "_handle", "_loop", "_on_expire", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expire: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expire = on_expire
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self.deadline: float | None = None

    def set(self, deadline: float | None) -> None:
        """Expire at `deadline` (loop time), or never when None."""
        self.deadline = deadline
        if deadline is None:
            return
        if self._handle is None or deadline < self._armed_at:
            self._arm(deadline)

    def set_in(self, seconds: float) -> None:
        self.set(self._loop.time() + seconds)

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
        if self._loop.time() >= deadline:
            self.deadline = None
            self._on_expire()
        else:
            self._arm(deadline)
