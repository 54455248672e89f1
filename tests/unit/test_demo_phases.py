"""The cluster demo's failed requests, cut into phases: every one counted once, sums exact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bascule.demo.phases import Event, phases

KILL = Event("lb1 killed", at=10.0, recovered_at=10.4)
RESTART = Event("lb1 restarted", at=20.0, recovered_at=20.3)


def failures(*at: float, cause: str = "connection refused") -> list[tuple[float, str]]:
    return [(t, cause) for t in at]


def test_every_phase_before_during_and_after_each_event_has_its_failures() -> None:
    failed = [
        *failures(1.0),  # before the first event (a backend restarting, a timeout...)
        *failures(10.0, 10.1, 10.39),  # the kill's outage, its first instant included
        *failures(12.0, cause="connection reset"),  # between the recovery and the restart
        *failures(20.1, 20.2),  # the restart's outage
        *failures(25.0, 99.0, cause="timeout"),  # after the restart's recovery, to the end
    ]
    cut = phases([KILL, RESTART], failed)
    assert [(phase.name, phase.failed) for phase in cut] == [
        ("before lb1 killed", 1),
        ("lb1 killed, until the first answer after it", 3),
        ("after that answer, until lb1 restarted", 1),
        ("lb1 restarted, until the first answer after it", 2),
        ("after that answer, until the end", 2),
    ]
    assert sum(phase.failed for phase in cut) == len(failed)
    assert cut[2].failures == {"connection reset": 1}


def test_an_outage_without_recovery_lasts_until_the_next_event() -> None:
    never = Event("lb1 killed", at=10.0, recovered_at=None)
    late = Event("lb1 killed", at=10.0, recovered_at=25.0)  # after the restart: ends nothing
    for kill in (never, late):
        cut = phases([kill, RESTART], failures(15.0, 19.9, 21.0))
        assert [phase.failed for phase in cut] == [0, 2, 0, 1]
        assert cut[1].name == "lb1 killed, until the first answer after it"


def test_no_event_is_one_phase() -> None:
    cut = phases([], failures(1.0, 2.0))
    assert [(phase.name, phase.failed) for phase in cut] == [("whole run", 2)]


times = st.floats(min_value=0, max_value=40, allow_nan=False)


@given(st.lists(st.tuples(times, st.sampled_from(["refused", "reset", "closed"]))))
def test_the_phases_always_add_up_to_the_total(failed: list[tuple[float, str]]) -> None:
    cut = phases([KILL, RESTART], failed)
    assert sum(phase.failed for phase in cut) == len(failed)
    for cause in ("refused", "reset", "closed"):
        expected = sum(1 for _, c in failed if c == cause)
        assert sum(phase.failures[cause] for phase in cut) == expected
