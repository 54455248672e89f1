"""The fake clock tests rely on, and the health checks' tick timers driven by it."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from bascule.clock import Clock, FakeClock, LoopClock
from bascule.health.ticks import MAX_TICK, MIN_TICK, TickTimers, tick_for


def note(notes: list[tuple[str, float]], clock: Clock, name: str) -> None:
    notes.append((name, clock.now()))


def test_callbacks_run_in_time_order_each_at_its_own_time() -> None:
    clock = FakeClock(start=10.0)
    ran: list[tuple[str, float]] = []
    for name, when in (("c", 13.0), ("a", 11.0), ("b", 12.0), ("a2", 11.0)):
        clock.call_at(when, partial(note, ran, clock, name))
    clock.call_at(11.5, lambda: ran.append(("cancelled", 0.0))).cancel()

    assert clock.advance(1.9) == 2
    assert ran == [("a", 11.0), ("a2", 11.0)]  # same time: in the order armed
    assert clock.now() == 11.9
    assert clock.advance(5.0) == 2
    assert ran[2:] == [("b", 12.0), ("c", 13.0)]
    assert clock.now() == 16.9
    assert clock.next_deadline() is None


def test_a_callback_may_arm_another_that_falls_due_in_the_same_advance() -> None:
    clock = FakeClock(start=0.0)
    ran: list[float] = []

    def every_second() -> None:
        ran.append(clock.now())
        clock.call_later(1.0, every_second)

    clock.call_soon(every_second)
    clock.advance(3.5)
    assert ran == [0.0, 1.0, 2.0, 3.0]
    assert clock.next_deadline() == 4.0


def test_wall_time_moves_with_monotonic_time() -> None:
    clock = FakeClock(start=5.0, wall_start=1_000.0)
    clock.advance(2.5)
    assert (clock.now(), clock.wall()) == (7.5, 1_002.5)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1.0)
    clock.advance_to(1.0)  # the past: time stays where it is
    assert clock.now() == 7.5


def test_jump_and_run_until_go_from_deadline_to_deadline() -> None:
    clock = FakeClock(start=0.0)
    assert clock.jump() is False
    hits: list[float] = []
    for when in (2.0, 4.0, 6.0):
        clock.call_at(when, lambda: hits.append(clock.now()))
    assert clock.jump() and hits == [2.0]
    assert clock.run_until(lambda: len(hits) == 3, limit=10.0) == 4.0
    with pytest.raises(AssertionError, match=r"within 1\.0s"):
        clock.run_until(lambda: False, limit=1.0)
    assert clock.now() == 7.0


def test_a_timer_loop_is_reported_instead_of_hanging() -> None:
    clock = FakeClock()
    clock.MAX_CALLBACKS_PER_ADVANCE = 100

    def again() -> None:
        clock.call_soon(again)

    clock.call_soon(again)
    with pytest.raises(RuntimeError, match="timer loop"):
        clock.advance(1.0)


async def test_the_loop_clock_is_the_loops_time_and_timers() -> None:
    loop = asyncio.get_running_loop()
    clock: Clock = LoopClock(loop)
    assert abs(clock.now() - loop.time()) < 0.01
    fired = asyncio.Event()
    clock.call_at(clock.now(), fired.set)
    await asyncio.wait_for(fired.wait(), 1.0)


# -- tick timers ------------------------------------------------------------------------


def test_the_tick_is_a_tenth_of_the_shortest_interval_within_bounds() -> None:
    assert tick_for([1.0, 2.0]) == MAX_TICK
    assert tick_for([0.1, 1.0]) == 0.01
    assert tick_for([0.001]) == MIN_TICK
    assert tick_for([]) == MAX_TICK


def test_tick_timers_run_callbacks_at_the_nearest_tick_in_order() -> None:
    clock = FakeClock(start=0.0)
    timers = TickTimers(clock, 0.02)
    fired: list[tuple[str, float]] = []
    for name, delay in (("c", 0.15), ("a", 0.05), ("b", 0.1), ("b2", 0.109)):
        timers.call_later(delay, partial(note, fired, clock, name))
    timers.call_later(0.07, lambda: fired.append(("cancelled", 0.0))).cancel()
    clock.advance(0.25)
    timers.close()
    # Each at the nearest tick, so at most half a tick off: 0.05 -> 0.04 (2.5 ticks
    # round to even), 0.1 and 0.109 share the tick at 0.1, 0.15 -> 0.16.
    assert [name for name, _ in fired] == ["a", "b", "b2", "c"]
    assert [at for _, at in fired] == pytest.approx([0.04, 0.1, 0.1, 0.16])


def test_tick_timers_use_one_clock_timer_for_every_callback_due_together() -> None:
    clock = FakeClock(start=0.0)
    timers = TickTimers(clock, 0.05)
    for i in range(1000):
        timers.call_later(1.0 + i / 100_000, lambda: None)  # all within half a tick of 1s
    timers.call_later(2.0, lambda: None)
    assert clock.armed() == [pytest.approx(1.0)]
    assert clock.advance(1.5) == 1  # one wake-up ran all 1,000


def test_a_failing_timer_callback_does_not_stop_the_others() -> None:
    clock = FakeClock(start=0.0)
    timers = TickTimers(clock, 0.01)
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in one server's callback")

    timers.call_later(0.02, broken)
    timers.call_later(0.02, lambda: fired.append("same tick"))
    timers.call_later(0.05, lambda: fired.append("later tick"))
    clock.advance(0.1)
    timers.close()
    assert fired == ["same tick", "later tick"]
