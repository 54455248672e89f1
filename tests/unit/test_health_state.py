"""HAProxy's check health counter and check scheduling, driven by hand-fed results."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.health.results import CheckResult
from bascule.health.state import CheckTiming, HealthCounter, InitialHealth

PASS = CheckResult(ok=True, reason="tcp check: connected")
FAIL = CheckResult(ok=False, reason="tcp check: connect refused")

thresholds = st.integers(min_value=1, max_value=6)
initials = st.sampled_from(["up", "down", "check_first"])
results = st.lists(st.booleans(), max_size=80)


def feed(counter: HealthCounter, outcomes: list[bool]) -> list[bool]:
    """Feed pass/fail outcomes one second apart; return is_up after each."""
    seen = []
    for i, ok in enumerate(outcomes):
        counter.record(PASS if ok else FAIL, now=float(i))
        seen.append(counter.is_up)
    return seen


class ReferenceModel:
    """The promise in plain words: `fall` failures in a row take an UP server DOWN,
    `rise` passes in a row bring a DOWN server UP."""

    def __init__(self, rise: int, fall: int, up: bool) -> None:
        self.rise, self.fall, self.up = rise, fall, up
        self.streak = 0

    def record(self, ok: bool) -> bool:
        if ok == self.up:  # a result agreeing with the state breaks any opposite streak
            self.streak = 0
            return self.up
        self.streak += 1
        if self.streak == (self.fall if self.up else self.rise):
            self.up, self.streak = not self.up, 0
        return self.up


@given(rise=thresholds, fall=thresholds, initial=initials, outcomes=results)
def test_health_never_leaves_its_range(
    rise: int, fall: int, initial: InitialHealth, outcomes: list[bool]
) -> None:
    counter = HealthCounter(rise, fall, initial)
    for i, ok in enumerate(outcomes):
        counter.record(PASS if ok else FAIL, now=float(i))
        assert 0 <= counter.health <= rise + fall - 1
        assert counter.is_up == (counter.health >= rise)


@given(rise=thresholds, fall=thresholds, up=st.booleans(), outcomes=results)
def test_up_down_follows_rise_and_fall_streaks_exactly(
    rise: int, fall: int, up: bool, outcomes: list[bool]
) -> None:
    counter = HealthCounter(rise, fall, "up" if up else "down")
    model = ReferenceModel(rise, fall, up)
    assert feed(counter, outcomes) == [model.record(ok) for ok in outcomes]


@given(rise=thresholds, fall=thresholds, outcomes=results)
def test_transitions_are_reported_exactly_when_up_changes(
    rise: int, fall: int, outcomes: list[bool]
) -> None:
    counter = HealthCounter(rise, fall, "down")
    for i, ok in enumerate(outcomes):
        was_up = counter.is_up
        transition = counter.record(PASS if ok else FAIL, now=float(i))
        assert (transition is not None) == (counter.is_up != was_up)
        if transition is not None:
            assert transition.up == counter.is_up
            assert transition.count == transition.needed == (rise if transition.up else fall)


def test_up_server_goes_down_after_exactly_fall_failures() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="up")
    assert feed(counter, [False, False]) == [True, True]
    assert counter.record(FAIL, now=2.0) is not None
    assert not counter.is_up


def test_a_single_pass_while_up_restores_full_health() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="up")
    assert feed(counter, [False, False, True, False, False]) == [True] * 5
    assert counter.health == 2  # 4 (full) - 2 failures


def test_one_failure_while_down_throws_away_collected_passes() -> None:
    counter = HealthCounter(rise=3, fall=2, initial="down")
    assert feed(counter, [True, True, False, True, True]) == [False] * 5
    assert counter.record(PASS, now=9.0) is not None


def test_check_first_needs_one_pass_and_down_needs_rise() -> None:
    first = HealthCounter(rise=3, fall=2, initial="check_first")
    assert not first.is_up
    transition = first.record(PASS, now=0.0)
    assert transition is not None and (transition.count, transition.needed) == (1, 1)

    down = HealthCounter(rise=3, fall=2, initial="down")
    assert feed(down, [True, True, True]) == [False, False, True]


def test_down_transition_carries_the_span_of_the_failure_streak() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="up")
    counter.record(FAIL, now=10.0)
    counter.record(FAIL, now=10.5)
    transition = counter.record(FAIL, now=10.512)
    assert transition is not None and not transition.up
    assert (transition.count, transition.needed) == (3, 3)
    # from the first failure of the streak to the last, not the gap between the last two
    assert transition.failing_for == pytest.approx(0.512)
    assert transition.result is FAIL


def test_fall_one_has_no_failure_span() -> None:
    counter = HealthCounter(rise=1, fall=1, initial="up")
    transition = counter.record(FAIL, now=1.0)
    assert transition is not None and transition.failing_for is None


def test_force_down_takes_an_up_server_down_at_once() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="up")
    transition = counter.force_down(FAIL, now=0.0)
    assert transition is not None and not transition.up and counter.health == 0
    assert counter.force_down(FAIL, now=1.0) is None  # already down: nothing new


def test_leaving_maintenance_is_up_but_one_failure_takes_it_down() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="down")
    counter.resume_after_maintenance()
    assert counter.is_up
    transition = counter.record(FAIL, now=0.0)
    assert transition is not None and (transition.count, transition.needed) == (1, 1)


@pytest.mark.parametrize(("rise", "fall"), [(0, 3), (2, 0), (-1, -1)])
def test_rise_and_fall_below_one_are_rejected(rise: int, fall: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HealthCounter(rise, fall)


# -- scheduling ------------------------------------------------------------------------

TIMING = CheckTiming(interval=2.0, fast_interval=0.5, down_interval=5.0)


def test_interval_is_chosen_by_health() -> None:
    rng = random.Random(1)
    counter = HealthCounter(rise=2, fall=3, initial="up")
    assert counter.next_delay(TIMING, rng) == 2.0  # settled UP
    counter.record(FAIL, now=0.0)
    assert counter.next_delay(TIMING, rng) == 0.5  # going down: fastinter
    counter.record(FAIL, now=1.0)
    counter.record(FAIL, now=2.0)
    assert counter.next_delay(TIMING, rng) == 5.0  # DOWN, health 0: downinter
    counter.record(PASS, now=3.0)
    assert counter.next_delay(TIMING, rng) == 0.5  # coming up: fastinter


def test_check_first_starts_with_the_fast_interval() -> None:
    counter = HealthCounter(rise=2, fall=3, initial="check_first")
    assert counter.next_delay(TIMING, random.Random(0)) == 0.5


@given(seed=st.integers(0, 2**32), jitter=st.floats(0.01, 0.5))
def test_jitter_stays_within_bounds(seed: int, jitter: float) -> None:
    timing = CheckTiming(interval=2.0, fast_interval=0.5, down_interval=5.0, jitter=jitter)
    rng = random.Random(seed)
    counter = HealthCounter(rise=2, fall=3, initial="up")
    delays = [counter.next_delay(timing, rng) for _ in range(50)]
    assert all(2.0 * (1 - jitter) <= d <= 2.0 * (1 + jitter) for d in delays)
    assert len(set(delays)) > 1  # actually spread, so servers don't fire together


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    timing = CheckTiming(interval=1.0, fast_interval=1.0, down_interval=1.0, jitter=0.1)
    counter = HealthCounter(rise=1, fall=1)
    first = [counter.next_delay(timing, random.Random(7)) for _ in range(3)]
    assert first == [counter.next_delay(timing, random.Random(7)) for _ in range(3)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 0.0, "fast_interval": 1.0, "down_interval": 1.0}, "interval"),
        ({"interval": 1.0, "fast_interval": 1.0, "down_interval": 1.0, "jitter": 0.6}, "jitter"),
    ],
)
def test_bad_timing_is_rejected(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CheckTiming(**kwargs)
