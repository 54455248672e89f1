"""How many client connections a file descriptor limit carries, and the warning."""

from __future__ import annotations

import logging

import pytest

from bascule.fdbudget import MARGIN_FDS, PROCESS_FDS, FrontendLimit, plan, reserved_fds
from bascule.logthrottle import ThrottledLog


def test_reserved_descriptors_count_listeners_checks_and_the_process() -> None:
    base = PROCESS_FDS + MARGIN_FDS
    assert reserved_fds(listeners=2, checked_servers=10) == base + 2 + 10
    assert reserved_fds(listeners=1, checked_servers=1, command_checks=1, vrrp_instances=1) == (
        base + 1 + 1 + 4 + 4
    )


def test_two_descriptors_per_connection_like_haproxy() -> None:
    fitted = plan(256, 38, [FrontendLimit("web", 10000)])
    assert fitted.connections == (256 - 38) // 2 == 109
    assert fitted.max_connections == {"web": 109}
    assert fitted.needed_limit == 38 + 2 * 10000


def test_values_that_fit_are_kept_and_unlimited_gets_the_budget() -> None:
    fitted = plan(65536, 40, [FrontendLimit("web", 1000), FrontendLimit("api", 0)])
    assert fitted.max_connections == {"web": 1000, "api": (65536 - 40) // 2 - 1000}
    assert fitted.warning() is None
    alone = plan(65536, 40, [FrontendLimit("api", 0)])
    assert alone.max_connections == {"api": 32748} and alone.warning() is None


def test_frontends_share_a_short_budget_in_proportion() -> None:
    fitted = plan(1000, 100, [FrontendLimit("a", 3000), FrontendLimit("b", 1000)])
    assert fitted.connections == 450
    assert fitted.max_connections == {"a": 337, "b": 112}
    assert sum(fitted.max_connections.values()) <= fitted.connections


def test_no_frontend_gets_zero_even_when_nothing_is_left() -> None:
    fitted = plan(30, 40, [FrontendLimit("web", 100), FrontendLimit("api", 0)])
    assert fitted.connections == 0
    assert fitted.max_connections == {"web": 1, "api": 1}
    just = plan(240, 38, [FrontendLimit("web", 100), FrontendLimit("api", 0)])
    assert (just.connections, just.max_connections) == (101, {"web": 100, "api": 1})
    short = plan(230, 38, [FrontendLimit("web", 100), FrontendLimit("api", 0)])
    assert (short.connections, short.max_connections) == (96, {"web": 48, "api": 47})


def test_the_warning_says_the_limit_the_figure_and_how_to_raise_it() -> None:
    fitted = plan(256, 38, [FrontendLimit("web", 10000), FrontendLimit("ops", 50)])
    warning = fitted.warning()
    assert warning is not None
    assert "file descriptor limit 256 carries 109 client connections" in warning
    assert "running with frontend web 10000 -> 108, frontend ops 50 -> 1." in warning
    assert "LimitNOFILE=20138" in warning and "ulimit -n 20138" in warning
    assert plan(100_000, 38, [FrontendLimit("web", 10000)]).warning() is None


def test_only_a_written_value_lowered_is_a_warning_the_default_is_just_said() -> None:
    default_only = plan(20000, 38, [FrontendLimit("web", 10000, explicit=False)])
    assert default_only.warning() is not None  # still logged, at info
    assert not default_only.lowered_explicit
    written = plan(
        20000, 38, [FrontendLimit("web", 10000, explicit=False), FrontendLimit("api", 9000)]
    )
    assert written.lowered_explicit


def test_a_throttled_log_writes_one_line_a_second_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttle"), logging.ERROR, interval=1.0)
    with caplog.at_level(logging.ERROR, "test.throttle"):
        written = [throttled.log(t, "out of fds") for t in (0.0, 0.1, 0.5, 0.99, 1.0, 1.5, 2.2)]
    assert written == [True, False, False, False, True, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "out of fds",
        "out of fds (and 3 more like it not logged)",
        "out of fds (and 1 more like it not logged)",
    ]
