"""Passive failure detection (nginx max_fails/fail_timeout), driven by a hand clock."""

from __future__ import annotations

from bascule.control.passive import PassiveDetector
from bascule.model import ServerState, ServerView


def pool(*names: str) -> tuple[ServerView, ...]:
    return tuple(ServerView("web", n, "127.0.0.1", 8000 + i, index=i) for i, n in enumerate(names))


def test_server_goes_down_after_max_fails_consecutive_failures_with_reason() -> None:
    d = PassiveDetector(pool("s1", "s2"), max_fails=3, fail_timeout=10)
    assert d.failure("web/s1", "connect refused", now=0) is None
    assert d.failure("web/s1", "connect refused", now=1) is None
    t = d.failure("web/s1", "connection reset", now=2)
    assert t is not None and t.old is ServerState.UP and t.new is ServerState.DOWN
    assert t.reason == (
        "server web/s1 DOWN: 3 consecutive failures on live traffic "
        "(last: connection reset); retrying it in 10s"
    )
    states = {s.key: s.state for s in d.servers}
    assert states == {"web/s1": ServerState.DOWN, "web/s2": ServerState.UP}


def test_a_success_resets_the_streak() -> None:
    d = PassiveDetector(pool("s1"), max_fails=2, fail_timeout=10)
    d.failure("web/s1", "timeout", now=0)
    d.success("web/s1")
    assert d.failure("web/s1", "timeout", now=1) is None
    assert d.failure("web/s1", "timeout", now=2) is not None


def test_server_comes_back_after_fail_timeout_and_not_before() -> None:
    d = PassiveDetector(pool("s1"), max_fails=1, fail_timeout=5)
    d.failure("web/s1", "connect refused", now=100)
    assert d.next_deadline() == 105
    assert d.tick(104.9) == []
    (back,) = d.tick(105)
    assert back.new is ServerState.UP and "fail_timeout 5s elapsed" in back.reason
    assert "connect refused" in back.reason
    assert d.next_deadline() is None
    # a fresh streak is needed to take it out again
    assert d.failure("web/s1", "connect refused", now=106) is not None


def test_max_fails_zero_disables_detection() -> None:
    d = PassiveDetector(pool("s1"), max_fails=0, fail_timeout=5)
    for i in range(10):
        assert d.failure("web/s1", "refused", now=i) is None


def test_failures_on_a_server_already_down_do_not_emit_again() -> None:
    d = PassiveDetector(pool("s1"), max_fails=1, fail_timeout=5)
    assert d.failure("web/s1", "refused", now=0) is not None
    assert d.failure("web/s1", "refused", now=1) is None  # in-flight stragglers


def test_unknown_server_is_ignored() -> None:
    d = PassiveDetector(pool("s1"), max_fails=1, fail_timeout=5)
    assert d.failure("web/zz", "refused", now=0) is None
