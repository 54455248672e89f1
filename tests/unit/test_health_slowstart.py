"""Slow start: the weight ramp of a server that re-entered service."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bascule.health.slowstart import RAMP_STEPS, effective_weight, first_step

weights = st.integers(min_value=1, max_value=256)
durations = st.floats(min_value=0.1, max_value=600, allow_nan=False)
starts = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(weight=weights, slow_start=durations, up_since=starts, data=st.data())
def test_ramp_is_monotonic_never_zero_and_full_by_slow_start(
    weight: int, slow_start: float, up_since: float, data: st.DataObject
) -> None:
    offsets = sorted(data.draw(st.lists(st.floats(0, slow_start * 1.5), max_size=20)))
    ramp = [effective_weight(weight, up_since, up_since + o, slow_start).weight for o in offsets]
    assert ramp == sorted(ramp)
    assert all(1 <= w <= weight for w in ramp)
    done = effective_weight(weight, up_since, up_since + slow_start, slow_start)
    assert done.weight == weight and done.next_change is None


@given(weight=weights, slow_start=durations, up_since=starts)
def test_following_next_change_reaches_full_weight_in_bounded_steps(
    weight: int, slow_start: float, up_since: float
) -> None:
    now = up_since
    point = effective_weight(weight, up_since, now, slow_start)
    seen = [point.weight]
    while point.next_change is not None:
        assert point.next_change > now
        now = point.next_change
        point = effective_weight(weight, up_since, now, slow_start)
        assert point.weight != seen[-1]  # waking at next_change always shows the new step
        seen.append(point.weight)
        assert len(seen) <= RAMP_STEPS + 1
    assert seen[-1] == weight
    assert now <= up_since + slow_start


def test_ramp_starts_near_five_percent_and_grows_linearly() -> None:
    assert first_step(100) == 5
    assert first_step(3) == 1
    points = [effective_weight(100, 0.0, t, 10.0) for t in (0.0, 0.99, 1.0, 5.0, 9.99, 10.0)]
    assert [p.weight for p in points] == [5, 5, 15, 53, 91, 100]
    assert points[0].next_change == 1.0
    assert points[-1].next_change is None


def test_weight_one_has_nothing_to_ramp() -> None:
    point = effective_weight(1, 0.0, 0.0, 60.0)
    assert point.weight == 1 and point.next_change is None


def test_no_ramp_without_slow_start_or_start_time() -> None:
    assert effective_weight(10, None, 5.0, 30.0).weight == 10
    assert effective_weight(10, 5.0, 5.0, 0.0).weight == 10
    assert effective_weight(10, 5.0, 5.0, 0.0).next_change is None


def test_zero_weight_stays_zero() -> None:
    point = effective_weight(0, 0.0, 1.0, 10.0)
    assert point.weight == 0 and point.next_change is None


def test_clock_before_up_since_is_the_first_step() -> None:
    assert effective_weight(100, 10.0, 9.0, 10.0).weight == 5
