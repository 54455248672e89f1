"""The control plane's clock: what time it is, and calling back at a time.

Pure code never reads a clock: it takes `now` and returns its next deadline (see
`health/server_state`, `health/outlier`). The adapters that drive it (the backend
controller, the health runner's tick timers) hold a `Clock` instead of the event loop,
so they read `now()` and arm `call_at()` through it. The daemon gives them a
`LoopClock` (the running loop's own clock and timers); unit tests give them a
`FakeClock`, whose time moves only when the test says so and which then runs the
callbacks that fell due, in order (like trio's MockClock). A test of "DOWN after the
third failed check at 2s intervals" then takes microseconds and cannot be flaky.

The per-request data path keeps its own cheaper clock (`proxy/timers.now`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

Callback = Callable[[], object]


class Timer(Protocol):
    """A callback armed on a clock; `cancel()` it before it runs, or it runs."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time for deadlines, wall time for events, and callbacks at a time."""

    def now(self) -> float:
        """Monotonic seconds: the time every deadline and `call_at` is in."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (what event timestamps say)."""
        ...

    def call_at(self, when: float, callback: Callback) -> Timer:
        """Call `callback()` once `now()` reaches `when` (at once if it has)."""
        ...

    def call_soon(self, callback: Callback) -> Timer:
        """Call `callback()` after the current callback returns, not from inside."""
        ...


class LoopClock:
    """The clock of an asyncio event loop: `loop.time()` and its timers.

    The loop's own bound methods, not wrappers: arming a check's timer (1,000 a second
    on a large config) costs no extra call."""

    __slots__ = ("call_at", "call_soon", "loop", "now")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now: Callable[[], float] = loop.time
        self.call_at: Callable[[float, Callback], Timer] = loop.call_at
        self.call_soon: Callable[[Callback], Timer] = loop.call_soon

    def wall(self) -> float:
        return time.time()


class FakeTimer:
    """What `FakeClock.call_at` returns."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock for tests: time stands still until `advance()` moves it.

    Moving time runs every callback that falls due on the way, in the order of their
    times (then of arming), with `now()` set to each one's time while it runs, the way
    the loop would have run them on a perfectly punctual machine. Nothing runs
    between two `advance()` calls, so a test sees each step's state.
    """

    # A test whose callbacks keep arming callbacks for "now" would otherwise never end.
    MAX_CALLBACKS_PER_ADVANCE = 1_000_000

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._queue: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_at(self, when: float, callback: Callback) -> FakeTimer:
        timer = FakeTimer(when, callback)
        heapq.heappush(self._queue, (when, next(self._order), timer))
        return timer

    def call_soon(self, callback: Callback) -> FakeTimer:
        return self.call_at(self._now, callback)

    def call_later(self, delay: float, callback: Callback) -> FakeTimer:
        return self.call_at(self._now + delay, callback)

    def next_deadline(self) -> float | None:
        """When the next armed callback falls due, or None if none is armed."""
        self._drop_cancelled()
        return self._queue[0][0] if self._queue else None

    def armed(self) -> list[float]:
        """When each armed (not cancelled) callback falls due, earliest first."""
        return sorted(when for when, _, timer in self._queue if not timer.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time forward by `seconds`, running what falls due; how many ran."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock does not go back ({seconds}s)")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> int:
        """Move time to `when` (not back), running what falls due; how many ran."""
        target = max(when, self._now)
        ran = 0
        while (due := self._pop_due(target)) is not None:
            self._now = max(self._now, due.when)
            due.callback()
            ran += 1
            if ran >= self.MAX_CALLBACKS_PER_ADVANCE:
                raise RuntimeError(f"over {ran} callbacks before {target}: a timer loop?")
        self._now = target
        return ran

    def jump(self) -> bool:
        """Move time to the next armed callback and run what falls due then (trio's
        autojump, one step at a time); False if nothing is armed."""
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self.advance_to(deadline)
        return True

    def run_until(self, condition: Callable[[], bool], limit: float) -> float:
        """Jump from deadline to deadline until `condition()` holds; the time it took.
        AssertionError if it does not hold within `limit` seconds of fake time."""
        start = self._now
        while not condition():
            deadline = self.next_deadline()
            if deadline is None or deadline > start + limit:
                self.advance_to(start + limit)
                if condition():
                    break
                raise AssertionError(f"condition not met within {limit}s of clock time")
            self.advance_to(deadline)
        return self._now - start

    def _pop_due(self, target: float) -> FakeTimer | None:
        self._drop_cancelled()
        if self._queue and self._queue[0][0] <= target:
            return heapq.heappop(self._queue)[2]
        return None

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
