"""One server's effective state and weight, and the event texts users read."""

from __future__ import annotations

import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.health.results import AgentState, CheckResult
from bascule.health.server_state import (
    InitialState,
    RiseFall,
    ServerStateMachine,
    agent_weight,
)
from bascule.health.state import CheckTiming
from bascule.model import WEIGHT_SCALE, ServerState, ServerView, format_weight

REFUSED = CheckResult(ok=False, reason="http check: connect refused")
OK = CheckResult(ok=True, reason="http check: status 200")


def server(weight: int = 4, name: str = "s2") -> ServerView:
    """A server of configured weight `weight`, as the control plane builds its view
    (in internal units)."""
    return ServerView("web", name, "127.0.0.1", 8002, weight=weight * WEIGHT_SCALE)


def machine(
    initial_state: InitialState = "up",
    *,
    rise: int = 2,
    fall: int = 3,
    checked: bool = True,
    slow_start: float = 0.0,
    weight: int = 4,
) -> ServerStateMachine:
    return ServerStateMachine(
        server(weight),
        initial_state=initial_state,
        check=RiseFall(rise, fall) if checked else None,
        slow_start=slow_start,
    )


def agent(
    state: AgentState | None = None, percent: int | None = None, ok: bool = True
) -> CheckResult:
    words = " ".join(w for w in (state, f"{percent}%" if percent is not None else None) if w)
    return CheckResult(
        ok=ok,
        reason=f"agent check: {words}",
        agent_state=state,
        agent_weight_percent=percent,
    )


# -- event texts (the issue's examples) -------------------------------------------------


def test_down_event_text_matches_the_issue() -> None:
    m = machine("up", rise=2, fall=3)
    assert m.check_result(REFUSED, now=10.0) == []
    assert m.check_result(REFUSED, now=10.5) == []
    (event,) = m.check_result(REFUSED, now=10.512)
    assert event.kind == "server.down"
    assert event.subject == "web/s2"
    assert event.message == (
        "server web/s2 DOWN: http check: connect refused (3/3 consecutive failures over 512ms)"
    )
    assert event.level == logging.WARNING
    assert m.view(10.512).state is ServerState.DOWN


def test_down_event_says_how_long_the_failures_went_on_not_a_time_ago() -> None:
    m = machine("up", rise=2, fall=2)
    assert m.check_result(REFUSED, now=5.0) == []
    (event,) = m.check_result(REFUSED, now=6.01)
    assert event.message == (
        "server web/s2 DOWN: http check: connect refused (2/2 consecutive failures over 1.0s)"
    )
    # a pass breaks the streak: the next one is counted from its own first failure
    m2 = machine("up", rise=1, fall=3)
    m2.check_result(REFUSED, now=1.0)
    m2.check_result(OK, now=2.0)
    m2.check_result(REFUSED, now=3.0)
    m2.check_result(REFUSED, now=3.2)
    (event,) = m2.check_result(REFUSED, now=3.5)
    assert event.message.endswith("(3/3 consecutive failures over 500ms)")


def test_up_event_text_matches_the_issue() -> None:
    m = machine("down", rise=2, fall=3)
    assert m.check_result(OK, now=1.0) == []
    (event,) = m.check_result(OK, now=2.0)
    assert (event.kind, event.message) == ("server.up", "server web/s2 UP after 2/2 checks")
    assert m.view(2.0).state is ServerState.UP


def test_fall_one_down_text_has_no_gap() -> None:
    m = machine("up", rise=1, fall=1)
    (event,) = m.check_result(REFUSED, now=0.0)
    assert event.message == "server web/s2 DOWN: http check: connect refused (1/1 failures)"


# -- initial states ---------------------------------------------------------------------


def test_check_first_needs_one_passing_check_and_down_needs_rise() -> None:
    first = machine("check_first", rise=3)
    assert first.view(0.0).state is ServerState.DOWN
    (event,) = first.check_result(OK, now=1.0)
    assert event.message == "server web/s2 UP after 1/1 checks"

    down = machine("down", rise=3)
    assert down.check_result(OK, now=1.0) == [] and down.check_result(OK, now=2.0) == []
    assert down.view(2.0).state is ServerState.DOWN
    assert down.check_result(OK, now=3.0)[0].message == "server web/s2 UP after 3/3 checks"


def test_without_a_check_down_stays_down_until_the_admin_says_up() -> None:
    m = machine("down", checked=False)
    assert m.view(0.0).state is ServerState.DOWN
    assert m.next_deadline(0.0) is None
    (event,) = m.admin("up", now=5.0)
    assert event.message == "server web/s2 UP: set by the admin API"
    assert m.view(5.0).state is ServerState.UP


def test_a_server_up_at_start_gets_full_weight_at_once() -> None:
    m = machine("up", slow_start=60.0, weight=50)
    assert m.view(0.0).weight == 50 * WEIGHT_SCALE
    assert m.next_deadline(0.0) is None


def test_unknown_initial_state_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="check_first"):
        ServerStateMachine(server(), initial_state="sleepy")  # type: ignore[arg-type]


def test_check_results_on_a_server_without_check_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no active check"):
        machine(checked=False).check_result(OK, now=0.0)


# -- DRAIN and MAINT ----------------------------------------------------------------------


def test_drain_takes_no_new_traffic_but_is_not_down() -> None:
    m = machine("up")
    (event,) = m.admin("drain", now=1.0)
    assert (event.kind, event.message) == (
        "server.drain",
        "server web/s2 DRAIN: set by the admin API",
    )
    view = m.view(1.0)
    assert view.state is ServerState.DRAIN and not view.takes_new_traffic
    assert view.weight == 4 * WEIGHT_SCALE  # weight kept: existing sessions are still served


def test_down_wins_over_drain() -> None:
    m = machine("drain", fall=1)
    (event,) = m.check_result(REFUSED, now=1.0)
    assert event.kind == "server.down"
    assert m.view(1.0).state is ServerState.DOWN


def test_coming_up_while_draining_says_so() -> None:
    m = machine("down", rise=1)
    m.admin("drain", now=0.0)
    (event,) = m.check_result(OK, now=1.0)
    assert event.kind == "server.drain"
    assert event.message == "server web/s2 UP after 1/1 checks, draining: no new traffic"


def test_maint_wins_over_everything() -> None:
    m = machine("up", fall=1)
    m.check_result(agent("drain"), now=0.0)
    m.ejected(100.0, "3 consecutive failures on live traffic; ejected for 100s", now=0.5)
    m.check_result(REFUSED, now=1.0)
    (event,) = m.admin("maint", now=2.0)
    assert (event.kind, event.message) == (
        "server.maint",
        "server web/s2 MAINT: set by the admin API",
    )
    assert m.view(2.0).state is ServerState.MAINT
    assert m.checks_paused
    assert m.check_result(REFUSED, now=3.0) == []  # no change to report while in MAINT
    assert m.view(3.0).state is ServerState.MAINT


def test_leaving_maint_is_up_at_once_but_one_failure_takes_it_down() -> None:
    m = machine("maint", rise=2, fall=3)
    (event,) = m.admin("up", now=1.0)
    assert event.message == "server web/s2 UP: set by the admin API"
    assert m.wants_check_now(1.0)
    (down,) = m.check_result(REFUSED, now=1.1)
    assert down.message == "server web/s2 DOWN: http check: connect refused (1/1 failures)"
    assert not m.wants_check_now(1.1)


def test_admin_cannot_set_down() -> None:
    with pytest.raises(ValueError, match="decided by checks"):
        machine().admin("down", now=0.0)  # type: ignore[arg-type]


# -- agent answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state", "kind"),
    [
        ("drain", ServerState.DRAIN, "server.drain"),
        ("maint", ServerState.MAINT, "server.maint"),
    ],
)
def test_agent_sets_drain_and_maint(word: AgentState, state: ServerState, kind: str) -> None:
    m = machine("up")
    (event,) = m.check_result(agent(word), now=1.0)
    assert event.kind == kind
    assert event.message == f"server web/s2 {state.name}: agent check: {word}"
    assert m.view(1.0).state is state
    assert not m.checks_paused  # the agent must keep being asked, to say "ready" again


def test_agent_up_does_not_undo_drain_but_ready_does() -> None:
    m = machine("up")
    m.check_result(agent("drain"), now=0.0)
    assert m.check_result(agent("up"), now=1.0) == []  # HAProxy: only the agent reverts
    assert m.view(1.0).state is ServerState.DRAIN
    (event,) = m.check_result(agent("ready"), now=2.0)
    assert event.message == "server web/s2 UP: agent check: ready"


def test_agent_ready_does_not_undo_admin_maint() -> None:
    m = machine("maint")
    assert m.check_result(agent("ready"), now=1.0) == []
    assert m.view(1.0).state is ServerState.MAINT


def test_agent_down_is_down_at_once_and_up_counts_as_a_passing_check() -> None:
    m = machine("up", rise=2, fall=3)
    (event,) = m.check_result(agent("down", ok=False), now=1.0)
    assert event.message == "server web/s2 DOWN: agent check: down"
    assert m.check_result(agent("up"), now=2.0) == []
    (up,) = m.check_result(agent("up"), now=3.0)
    assert up.message == "server web/s2 UP after 2/2 checks"


def test_unreachable_agent_counts_as_a_failed_check() -> None:
    m = machine("up", fall=2)
    unreachable = CheckResult(ok=False, reason="agent check: connect refused")
    m.check_result(unreachable, now=0.0)
    (event,) = m.check_result(unreachable, now=1.0)
    assert event.kind == "server.down"


@pytest.mark.parametrize(
    ("configured", "percent", "effective"),
    [
        (4, 75, "3"),
        (3, 75, "2.25"),
        (10, 75, "7.5"),
        (1, 50, "0.5"),  # HAProxy's own rounding would make this 0 (and 1 before this fix)
        (1, 10, "0.12"),  # 1.6 units, rounded to 2 of 16
        (1, 1, "0.06"),  # never below one unit while the agent wants traffic on it
        (4, 0, "0"),
        (4, 100, "4"),
        (200, 200, "256"),  # HAProxy's maximum weight
    ],
)
def test_agent_weight_is_a_share_of_the_configured_weight_at_any_weight(
    configured: int, percent: int, effective: str
) -> None:
    """In configured units, as events show it; the views carry internal units."""
    assert format_weight(agent_weight(configured * WEIGHT_SCALE, percent)) == effective
    m = machine("up", weight=configured)
    m.check_result(agent(percent=percent), now=0.0)
    assert format_weight(m.view(0.0).weight) == effective


def test_agent_weight_change_is_an_event_with_the_numbers() -> None:
    m = machine("up", weight=4)
    (event,) = m.check_result(agent(percent=75), now=0.0)
    assert event.kind == "server.weight"
    assert event.message == "server web/s2 weight 4 -> 3 (75% of configured 4): agent check: 75%"
    assert event.fields == {"weight": 3, "previous": 4}
    assert m.check_result(agent(percent=75), now=1.0) == []  # same answer: nothing new


def test_agent_half_of_weight_one_is_an_event_in_configured_units() -> None:
    m = machine("up", weight=1)
    (event,) = m.check_result(agent(percent=50), now=0.0)
    assert event.message == (
        "server web/s2 weight 1 -> 0.5 (50% of configured 1): agent check: 50%"
    )
    assert event.fields == {"weight": 0.5, "previous": 1}


def test_agent_zero_percent_takes_no_new_traffic() -> None:
    m = machine("up", weight=4)
    m.check_result(agent(percent=0), now=0.0)
    assert not m.view(0.0).takes_new_traffic


def test_agent_answer_without_weight_keeps_the_previous_weight() -> None:
    m = machine("up", weight=10)
    m.check_result(agent(percent=50), now=0.0)
    m.check_result(agent("up"), now=1.0)
    assert m.view(1.0).weight == 5 * WEIGHT_SCALE


# -- slow start -------------------------------------------------------------------------


def test_slow_start_ramps_after_coming_up_and_deadlines_follow_it() -> None:
    m = machine("down", rise=1, slow_start=10.0, weight=100)
    m.check_result(OK, now=100.0)
    assert m.view(100.0).weight == 5 * WEIGHT_SCALE
    assert m.next_deadline(100.0) == pytest.approx(101.0)
    assert format_weight(m.view(105.0).weight) == "52.5"
    assert m.view(110.0).weight == 100 * WEIGHT_SCALE
    assert m.next_deadline(110.0) is None


def test_slow_start_ramps_a_server_of_weight_one_too() -> None:
    """Without the internal scale, weight 1 had no smaller step: full weight at once."""
    m = machine("down", rise=1, slow_start=10.0, weight=1)
    m.check_result(OK, now=0.0)
    ramp = [format_weight(m.view(float(t)).weight) for t in range(0, 11, 2)]
    assert ramp == ["0.06", "0.25", "0.44", "0.62", "0.81", "1"]
    assert m.next_deadline(0.0) == pytest.approx(1.0)


def test_slow_start_restarts_after_a_down_period() -> None:
    m = machine("up", rise=1, fall=1, slow_start=10.0, weight=100)
    m.check_result(REFUSED, now=0.0)
    m.check_result(OK, now=50.0)
    assert m.view(50.0).weight == 5 * WEIGHT_SCALE


@given(
    outcomes=st.lists(st.booleans(), max_size=40),
    weight=st.integers(1, 256),
    slow_start=st.floats(0.5, 100),
)
def test_an_up_server_with_weight_always_takes_traffic(
    outcomes: list[bool], weight: int, slow_start: float
) -> None:
    m = machine("down", rise=2, fall=2, slow_start=slow_start, weight=weight)
    for i, ok in enumerate(outcomes):
        now = i * 0.7
        m.check_result(OK if ok else REFUSED, now=now)
        view = m.view(now)
        if view.state is ServerState.UP:
            assert 1 <= view.weight <= weight * WEIGHT_SCALE


# -- ejection (passive) ------------------------------------------------------------------


def test_ejection_without_check_ends_by_time_alone() -> None:
    m = machine("up", checked=False)
    (event,) = m.ejected(10.0, "3 consecutive failures on live traffic (last: reset)", now=0.0)
    assert event.kind == "server.ejected"
    assert event.message == (
        "server web/s2 DOWN: 3 consecutive failures on live traffic (last: reset)"
    )
    assert m.view(9.9).state is ServerState.DOWN
    assert m.next_deadline(5.0) == 10.0
    assert m.tick(9.9) == []
    (back,) = m.tick(10.0)
    assert (back.kind, back.message) == ("server.up", "server web/s2 UP: ejection of 10s over")
    assert m.view(10.0).state is ServerState.UP
    assert m.next_deadline(10.0) is None


def test_view_is_right_even_before_tick_runs() -> None:
    m = machine("up", checked=False, slow_start=10.0, weight=100)
    m.ejected(10.0, "ejected", now=0.0)
    late = m.view(10.5)  # the timer fired late; another server's change asked first
    assert late.state is ServerState.UP and late.weight == 5 * WEIGHT_SCALE
    assert m.tick(10.5)[0].kind == "server.up"  # the event is not lost


def test_ejected_server_with_a_check_returns_only_after_a_check_passes() -> None:
    m = machine("up", rise=2, fall=3)
    (event,) = m.ejected(10.0, "5 consecutive 5xx responses (last: 503)", now=0.0)
    assert event.message == (
        "server web/s2 DOWN: 5 consecutive 5xx responses (last: 503), then back once an "
        "active check passes"
    )
    assert m.check_result(OK, now=5.0) == []  # passing during the ejection time: not yet
    assert not m.needs_check_to_return(5.0)
    (over,) = m.tick(10.0)
    assert over.kind == "server.ejection_over"
    assert m.view(10.0).state is ServerState.DOWN
    assert m.needs_check_to_return(10.0) and m.wants_check_now(10.0)
    assert m.next_deadline(10.0) is None
    assert m.check_result(REFUSED, now=11.0) == []
    (back,) = m.check_result(OK, now=12.0)
    assert back.message == "server web/s2 UP: ejection over, http check: status 200"
    assert m.view(12.0).state is ServerState.UP


def test_check_delay_is_fast_while_waiting_to_return() -> None:
    timing = CheckTiming(interval=5.0, fast_interval=0.5, down_interval=10.0)
    m = machine("up")
    rng = random.Random(0)
    assert m.next_check_delay(timing, rng, now=0.0) == 5.0
    m.ejected(10.0, "ejected", now=0.0)
    m.tick(10.0)
    assert m.next_check_delay(timing, rng, now=10.0) == 0.5


def test_view_and_next_deadline_change_nothing() -> None:
    m = machine("up", checked=False)
    m.ejected(10.0, "ejected", now=0.0)
    for t in (5.0, 12.0, 3.0):
        m.view(t)
        m.next_deadline(t)
    assert m.tick(12.0)[0].kind == "server.up"
