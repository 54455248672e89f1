"""Passive detection and outlier ejection for a backend, driven by a hand clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.health.outlier import BackendOutlier, OutlierPolicy
from bascule.health.results import CheckResult
from bascule.health.server_state import RiseFall, ServerStateMachine
from bascule.model import ServerState, ServerView

OK = CheckResult(ok=True, reason="http check: status 200")


def machines(*names: str, checked: bool = False) -> list[ServerStateMachine]:
    return [
        ServerStateMachine(
            ServerView("web", n, "127.0.0.1", 8000 + i, index=i),
            check=RiseFall(2, 3) if checked else None,
        )
        for i, n in enumerate(names)
    ]


def backend(
    *names: str, checked: bool = False, **policy: Any
) -> tuple[BackendOutlier, dict[str, ServerStateMachine]]:
    ms = machines(*names, checked=checked)
    settings = replace(OutlierPolicy(max_ejected_percent=100), **policy)
    outlier = BackendOutlier("web", settings, ms)
    return outlier, {m.server.name: m for m in ms}


def states(ms: dict[str, ServerStateMachine], now: float) -> dict[str, ServerState]:
    return {name: m.state(now) for name, m in ms.items()}


# -- the PassiveDetector behaviour it supersedes -----------------------------------------


def test_server_is_ejected_after_max_fails_consecutive_failures_with_reason() -> None:
    o, ms = backend("s1", "s2", max_fails=3, fail_timeout=10)
    assert o.failure("web/s1", "connect refused", now=0) == []
    assert o.failure("web/s1", "connect refused", now=1) == []
    (event,) = o.failure("web/s1", "connection reset", now=2)
    assert event.kind == "server.ejected"
    assert event.message == (
        "server web/s1 DOWN: 3 consecutive failures on live traffic "
        "(last: connection reset); ejected for 10s"
    )
    assert states(ms, 2) == {"s1": ServerState.DOWN, "s2": ServerState.UP}


def test_a_success_resets_the_streak() -> None:
    o, _ = backend("s1", max_fails=2)
    o.failure("web/s1", "timeout", now=0)
    o.success("web/s1")
    assert o.failure("web/s1", "timeout", now=1) == []
    assert o.failure("web/s1", "timeout", now=2) != []


def test_server_comes_back_after_fail_timeout_and_not_before() -> None:
    o, ms = backend("s1", max_fails=1, fail_timeout=5)
    o.failure("web/s1", "connect refused", now=100)
    s1 = ms["s1"]
    assert s1.next_deadline(100) == 105
    assert s1.tick(104.9) == []
    (back,) = s1.tick(105)
    assert back.kind == "server.up" and "5s over" in back.message
    assert s1.next_deadline(105) is None
    # a fresh streak is needed to take it out again
    assert o.failure("web/s1", "connect refused", now=106) != []


def test_max_fails_zero_disables_detection() -> None:
    o, _ = backend("s1", max_fails=0)
    assert all(o.failure("web/s1", "refused", now=i) == [] for i in range(10))


def test_failures_on_a_server_already_out_do_not_count() -> None:
    o, ms = backend("s1", max_fails=2, fail_timeout=5)
    o.failure("web/s1", "refused", now=0)
    assert o.failure("web/s1", "refused", now=1) != []
    for t in (1.1, 2, 3):  # in-flight stragglers while ejected
        assert o.failure("web/s1", "refused", now=t) == []
    ms["s1"].tick(6)
    assert o.failure("web/s1", "refused", now=7) == []  # streak restarted at 1


def test_unknown_server_is_ignored() -> None:
    o, _ = backend("s1", max_fails=1)
    assert o.failure("web/zz", "refused", now=0) == []
    o.success("web/zz")
    assert o.response_status("web/zz", 503, now=0) == []


# -- consecutive 5xx ---------------------------------------------------------------------


def test_consecutive_5xx_eject_and_other_statuses_reset_the_streak() -> None:
    o, ms = backend("s1", consecutive_5xx=3, fail_timeout=10)
    o.response_status("web/s1", 500, now=0)
    o.response_status("web/s1", 502, now=1)
    assert o.response_status("web/s1", 404, now=2) == []  # a 4xx is the client's fault
    o.response_status("web/s1", 503, now=3)
    o.response_status("web/s1", 503, now=4)
    (event,) = o.response_status("web/s1", 504, now=5)
    assert event.message == (
        "server web/s1 DOWN: 3 consecutive 5xx responses (last: 504); ejected for 10s"
    )
    assert ms["s1"].state(5) is ServerState.DOWN


def test_consecutive_5xx_zero_is_off() -> None:
    o, _ = backend("s1")
    assert all(o.response_status("web/s1", 500, now=i) == [] for i in range(20))


def test_transport_success_does_not_hide_a_5xx_streak() -> None:
    # The data plane reports success() for every completed exchange, 5xx included.
    o, _ = backend("s1", consecutive_5xx=2)
    o.response_status("web/s1", 500, now=0)
    o.success("web/s1")
    assert o.response_status("web/s1", 500, now=1) != []


# -- ejection time growth -----------------------------------------------------------------


def eject_again(o: BackendOutlier, m: ServerStateMachine, now: float) -> float:
    """Eject s1 at `now` (max_fails=1); return how long for; end the ejection."""
    (event,) = o.failure("web/s1", "refused", now=now)
    deadline = m.next_deadline(now)
    assert deadline is not None and event.kind == "server.ejected"
    m.tick(deadline)
    return deadline - now


def test_ejection_time_doubles_per_repeat_and_caps() -> None:
    o, ms = backend("s1", max_fails=1, fail_timeout=10, max_ejection_time=60)
    now, durations = 0.0, []
    for _ in range(5):
        d = eject_again(o, ms["s1"], now)
        durations.append(d)
        now += d + 1  # back for one second only, then failing again
    assert durations == [10, 20, 40, 60, 60]


def test_repeat_ejection_text_says_how_many_in_a_row() -> None:
    o, ms = backend("s1", max_fails=1, fail_timeout=10, max_ejection_time=300)
    eject_again(o, ms["s1"], 0)
    (event,) = o.failure("web/s1", "refused", now=11)
    assert event.message == (
        "server web/s1 DOWN: 1 failure on live traffic (last: refused); "
        "ejected for 20s (ejection 2 in a row, max_ejection_time 300s)"
    )


def test_ejection_time_resets_after_a_clean_period_of_max_ejection_time() -> None:
    o, ms = backend("s1", max_fails=1, fail_timeout=10, max_ejection_time=60)
    assert eject_again(o, ms["s1"], 0) == 10
    assert eject_again(o, ms["s1"], 11) == 20
    # ended at 31; healthy for 60s
    assert eject_again(o, ms["s1"], 91) == 10
    assert o.ejections_in_a_row("web/s1") == 1


def test_huge_repeat_counts_do_not_overflow() -> None:
    policy = OutlierPolicy(fail_timeout=1, max_ejection_time=300)
    assert policy.ejection_time(10_000) == 300


# -- max_ejected_percent -------------------------------------------------------------------


def test_cap_keeps_a_bad_server_in_and_says_so_once() -> None:
    o, ms = backend("s1", "s2", "s3", "s4", max_fails=1, max_ejected_percent=50)
    o.failure("web/s1", "refused", now=0)
    o.failure("web/s2", "refused", now=0)
    (event,) = o.failure("web/s3", "refused", now=1)
    assert event.kind == "server.ejection_capped"
    assert event.subject == "web/s3"
    assert event.message == (
        "backend web: s3 not ejected: 2 of 4 servers (50%) already ejected, max_ejected_percent 50"
    )
    assert ms["s3"].state(1) is ServerState.UP
    assert o.failure("web/s3", "refused", now=2) == []  # no flood of the same news


def test_capped_server_is_ejected_once_room_frees_up() -> None:
    o, ms = backend("s1", "s2", "s3", "s4", max_fails=1, fail_timeout=10, max_ejected_percent=50)
    o.failure("web/s1", "refused", now=0)
    o.failure("web/s2", "refused", now=0)
    o.failure("web/s3", "refused", now=1)
    ms["s1"].tick(10)
    (event,) = o.failure("web/s3", "refused", now=10.5)
    assert event.kind == "server.ejected"


def test_one_server_may_always_be_ejected_like_envoy() -> None:
    o, _ = backend("s1", "s2", "s3", max_fails=1, max_ejected_percent=10)
    assert o.failure("web/s1", "refused", now=0)[0].kind == "server.ejected"
    assert o.failure("web/s2", "refused", now=0)[0].kind == "server.ejection_capped"


def test_a_waiting_for_check_server_still_counts_as_ejected() -> None:
    o, ms = backend("s1", "s2", checked=True, max_fails=1, fail_timeout=5, max_ejected_percent=50)
    o.failure("web/s1", "refused", now=0)
    ms["s1"].tick(5)
    assert o.ejected_count(6) == 1
    assert o.failure("web/s2", "refused", now=6)[0].kind == "server.ejection_capped"
    ms["s1"].check_result(OK, now=7)
    assert o.ejected_count(7) == 0


actions = st.lists(
    st.tuples(
        st.sampled_from(["failure", "success", "5xx", "200", "wait", "check"]),
        st.integers(0, 5),
        st.floats(0, 20),
    ),
    max_size=60,
)


@given(
    steps=actions,
    servers=st.integers(1, 6),
    percent=st.integers(0, 100),
    checked=st.booleans(),
)
def test_percent_cap_holds_for_any_sequence(
    steps: list[tuple[str, int, float]], servers: int, percent: int, checked: bool
) -> None:
    names = [f"s{i}" for i in range(servers)]
    o, ms = backend(
        *names,
        checked=checked,
        max_fails=1,
        consecutive_5xx=1,
        fail_timeout=5,
        max_ejected_percent=percent,
    )
    allowed = max(1, servers * percent // 100)
    now = 0.0
    for action, index, amount in steps:
        key = f"web/s{index % servers}"
        machine = ms[f"s{index % servers}"]
        if action == "failure":
            o.failure(key, "refused", now)
        elif action == "success":
            o.success(key)
        elif action == "5xx":
            o.response_status(key, 503, now)
        elif action == "200":
            o.response_status(key, 200, now)
        elif action == "check" and checked:
            machine.check_result(OK, now)
        else:
            now += amount
            for m in ms.values():
                m.tick(now)
        assert o.ejected_count(now) <= allowed


# -- policy validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"max_ejected_percent": 101}, "between 0 and 100"),
        ({"max_fails": -1}, "0 \\(off\\) or more"),
        ({"fail_timeout": 0}, "positive durations"),
    ],
)
def test_bad_policy_is_rejected(settings: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OutlierPolicy(**settings)  # type: ignore[arg-type]
