"""The backend controller and check scheduling on a fake clock: exact times, no sleep.

Checks are answered by a scripted probe (the servers' health is whatever the test
says), time moves only when the test moves it, and every assertion is about what a
user would read or get: the event and its moment, the state and weight traffic sees.
"""

from __future__ import annotations

import itertools
import random
import textwrap
from collections.abc import Callable

import pytest

from bascule.clock import FakeClock
from bascule.config import load_config_text
from bascule.control.journal import Journal
from bascule.control.plane import BackendController
from bascule.health.probes import CheckSpec
from bascule.health.results import CheckResult
from bascule.health.runner import SharedChecks, check_intervals
from bascule.health.slowstart import effective_weight
from bascule.model import WEIGHT_SCALE, Event, ServerState, ServerView


class ScriptedProbe:
    """Answers each check of a server (known by its port) with what the test set:
    a pass, or "connect refused" for the ports in `failing`; `latency` seconds after
    the check started, from the clock, as a real probe's result comes from the loop."""

    def __init__(self, clock: FakeClock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.failing: set[int] = set()
        self.checks: list[tuple[int, float, bool]] = []  # (port, started at, passed)

    def __call__(self, spec: CheckSpec, on_result: Callable[[CheckResult], None]) -> bool:
        passed = spec.port not in self.failing
        self.checks.append((spec.port, self.clock.now(), passed))
        reason = "tcp check: connected" if passed else "tcp check: connect refused"
        result = CheckResult(passed, reason, self.latency)
        self.clock.call_at(self.clock.now() + self.latency, lambda: on_result(result))
        return True

    def times(self, port: int, passed: bool | None = None) -> list[float]:
        """When the checks of `port` started (only those that passed/failed, if given)."""
        return [t for p, t, ok in self.checks if p == port and passed in (None, ok)]


class Plane:
    """One backend's controller on a fake clock, with its journal and probe."""

    def __init__(self, backend_yaml: str, latency: float = 0.0) -> None:
        text = (
            "frontends:\n"
            '  - {name: fe, bind: "127.0.0.1:1", default_backend: be}\n'
            "backends:\n"
            "  - name: be\n" + textwrap.indent(textwrap.dedent(backend_yaml).strip(), "    ")
        )
        config = load_config_text(text, "unit.yaml")
        self.config = config.backends[0]
        self.clock = FakeClock()
        self.start = self.clock.now()
        self.probe = ScriptedProbe(self.clock, latency)
        self.journal = Journal(wall_clock=self.clock.wall)
        checks = [s.check for s in self.config.servers if s.check.type != "none"]
        shared = SharedChecks(self.clock, check_intervals(checks), self.probe)
        self.controller = BackendController(
            self.config,
            {},
            self.journal,
            self.clock,
            random.Random(1),
            shared,
            config.frontends_using("be"),
        )
        self.controller.start()

    def view(self, name: str) -> ServerView:
        return next(s for s in self.controller.runtime.snapshot.servers if s.name == name)

    def events(self, kind: str, subject: str | None = None) -> list[Event]:
        found = self.journal.recent(kind)
        return [e for e in found if subject is None or e.subject == subject]

    def until_event(self, kind: str, subject: str | None = None, limit: float = 60.0) -> Event:
        """Jump the clock until an event of `kind` is recorded; that event."""
        self.clock.run_until(lambda: bool(self.events(kind, subject)), limit)
        return self.events(kind, subject)[0]

    def at(self, event: Event) -> float:
        """The clock's monotonic time the event was recorded at."""
        return event.time - self.clock.wall() + self.clock.now()


def servers(*entries: str) -> str:
    return "servers:\n" + "".join(f"  - {entry}\n" for entry in entries)


def tcp_check(interval: str = "2s", rise: int = 2, fall: int = 3) -> str:
    return f"check: {{type: tcp, interval: {interval}, rise: {rise}, fall: {fall}}}\n"


NO_PASSIVE = "passive: {max_fails: 0}\n"
S1 = "{name: s1, address: 127.0.0.1, port: 8001}"
S2 = "{name: s2, address: 127.0.0.1, port: 8002}"
S3 = "{name: s3, address: 127.0.0.1, port: 8003}"
B1 = "{name: b1, address: 127.0.0.1, port: 8101, backup: true}"


# -- active checks ----------------------------------------------------------------------


def test_fall_3_at_2s_goes_down_at_the_third_failed_check_4s_after_the_first() -> None:
    plane = Plane(tcp_check() + NO_PASSIVE + servers(S1, S2))
    plane.probe.failing.add(8001)

    down = plane.until_event("server.down", "be/s1")

    first, second, third = plane.probe.times(8001)
    assert (second - first, third - first) == pytest.approx((2.0, 4.0), abs=1e-9)
    assert plane.at(down) == pytest.approx(third, abs=1e-9)
    assert plane.clock.now() == pytest.approx(first + 4.0, abs=1e-9)  # not a tick later
    assert first - plane.start < 2.0  # the first check falls within one interval
    assert down.message == (
        "server be/s1 DOWN: tcp check: connect refused (3/3 consecutive failures over 4.0s)"
    )
    assert plane.view("s1").state is ServerState.DOWN
    assert plane.view("s2").state is ServerState.UP
    assert plane.events("server.", "be/s2") == []


def test_two_failures_are_not_enough_and_a_pass_starts_the_count_again() -> None:
    plane = Plane(tcp_check() + NO_PASSIVE + servers(S1))
    plane.probe.failing.add(8001)
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 2, 10.0)
    plane.probe.failing.clear()
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 3, 10.0)
    plane.probe.failing.add(8001)
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 5, 10.0)

    # fail, fail, pass, fail, fail: never three in a row
    assert [ok for _, _, ok in plane.probe.checks] == [False, False, True, False, False]
    assert plane.view("s1").state is ServerState.UP
    assert plane.events("server.") == []
    down = plane.until_event("server.down", "be/s1", limit=2.0)  # the sixth check
    assert plane.at(down) == pytest.approx(plane.probe.times(8001)[-1], abs=1e-9)


def test_a_down_server_comes_back_up_at_its_second_passing_check() -> None:
    plane = Plane(tcp_check(rise=2) + NO_PASSIVE + servers(S1))
    plane.probe.failing.add(8001)
    plane.until_event("server.down", "be/s1")
    plane.probe.failing.clear()

    up = plane.until_event("server.up", "be/s1")

    passes = plane.probe.times(8001, passed=True)
    assert len(passes) == 2
    assert passes[1] - passes[0] == pytest.approx(2.0, abs=1e-9)
    assert plane.at(up) == pytest.approx(passes[1], abs=1e-9)
    assert up.message == "server be/s1 UP after 2/2 checks"
    assert plane.view("s1").state is ServerState.UP


def test_checks_come_at_fast_interval_while_changing_and_down_interval_while_down() -> None:
    check = "check: {type: tcp, interval: 10s, fast_interval: 1s, down_interval: 5s, fall: 3}\n"
    plane = Plane(check + NO_PASSIVE + servers(S1))
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 2, 20.0)
    plane.probe.failing.add(8001)
    plane.until_event("server.down", "be/s1")
    plane.clock.run_until(lambda: len(plane.probe.times(8001, passed=False)) == 5, 20.0)
    plane.probe.failing.clear()
    plane.until_event("server.up", "be/s1")
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 10, 20.0)

    times = plane.probe.times(8001)
    # The wait before each check, and what that check found:
    gaps = [round(later - earlier, 9) for earlier, later in itertools.pairwise(times)]
    assert gaps == [
        10.0,  # UP: interval (a pass)
        10.0,  # the first failure
        1.0,  # changing state: fast_interval (second failure)
        1.0,  # third failure: DOWN
        5.0,  # DOWN: down_interval
        5.0,
        5.0,  # the first pass
        1.0,  # rising: fast_interval; the second pass: UP
        10.0,  # UP: interval again
    ], gaps


def test_first_checks_spread_over_one_interval_and_a_server_in_maint_is_not_checked() -> None:
    many = [f"{{name: s{i}, address: 127.0.0.1, port: {9000 + i}}}" for i in range(100)]
    maint = "{name: m, address: 127.0.0.1, port: 8999, initial_state: maint}"
    plane = Plane(tcp_check() + NO_PASSIVE + servers(*many, maint))
    plane.clock.advance(2.0)

    firsts = sorted(plane.probe.times(port)[0] for port in range(9000, 9100))
    assert plane.start <= firsts[0] and firsts[-1] <= plane.start + 2.0
    # Spread, not all at once (HAProxy spreads its first checks too): random, so any
    # tenth of the interval holds about a tenth of them; 30 leaves room for chance.
    assert max(sum(1 for t in firsts if t0 <= t < t0 + 0.2) for t0 in firsts) <= 30
    plane.clock.advance(60.0)
    assert plane.probe.times(8999) == []
    assert plane.view("m").state is ServerState.MAINT


def test_a_slow_probe_delays_the_next_check_by_its_own_duration() -> None:
    # The next check is armed when the result arrives (HAProxy: inter after the check).
    plane = Plane(tcp_check() + NO_PASSIVE + servers(S1), latency=0.5)
    plane.probe.failing.add(8001)
    down = plane.until_event("server.down", "be/s1")
    first, second, third = plane.probe.times(8001)
    assert (second - first, third - second) == pytest.approx((2.5, 2.5), abs=1e-9)
    assert plane.at(down) == pytest.approx(third + 0.5, abs=1e-9)


# -- passive ejection -------------------------------------------------------------------


def test_an_ejection_ends_at_its_computed_time_and_the_next_one_lasts_twice_as_long() -> None:
    passive = "passive: {max_fails: 3, fail_timeout: 10s, max_ejection_time: 300s}\n"
    plane = Plane("check: {type: none}\n" + passive + servers(S1, S2))
    s1 = plane.view("s1")
    for _ in range(3):
        plane.controller.failure(s1, "connect refused")
    ejected_at = plane.clock.now()
    (ejected,) = plane.events("server.ejected", "be/s1")
    assert ejected.message.endswith("ejected for 10s"), ejected.message
    assert plane.view("s1").state is ServerState.DOWN

    plane.clock.advance(9.999)
    assert plane.view("s1").state is ServerState.DOWN
    assert plane.events("server.up") == []
    back = plane.until_event("server.up", "be/s1", limit=0.01)
    assert plane.at(back) == pytest.approx(ejected_at + 10.0, abs=1e-9)
    assert back.message == "server be/s1 UP: ejection of 10s over"
    assert plane.view("s1").state is ServerState.UP

    for _ in range(3):
        plane.controller.failure(plane.view("s1"), "connection reset")
    again_at = plane.clock.now()
    plane.clock.run_until(lambda: len(plane.events("server.up", "be/s1")) == 2, 60.0)
    assert plane.clock.now() - again_at == pytest.approx(20.0, abs=1e-9)


def test_a_checked_server_is_checked_at_once_when_its_ejection_ends_and_back_if_it_passes() -> None:
    passive = "passive: {max_fails: 1, fail_timeout: 3s}\n"
    plane = Plane(tcp_check(interval="10s") + passive + servers(S1, S2))
    plane.clock.run_until(lambda: len(plane.probe.times(8001)) == 1, 10.0)  # a first pass
    plane.controller.failure(plane.view("s1"), "connection reset")
    ejected_at = plane.clock.now()

    over = plane.until_event("server.ejection_over", "be/s1")
    assert plane.at(over) == pytest.approx(ejected_at + 3.0, abs=1e-9)
    assert over.message == (
        "server be/s1 ejection time over; back in traffic once an active check passes"
    )
    # Not at its next 10s interval: the check runs as the ejection ends.
    assert plane.probe.times(8001)[-1] == pytest.approx(ejected_at + 3.0, abs=1e-9)
    (up,) = plane.events("server.up", "be/s1")
    assert plane.at(up) == plane.at(over)
    assert plane.view("s1").state is ServerState.UP


def test_consecutive_5xx_eject_until_the_timeout_then_traffic_returns() -> None:
    passive = "passive: {consecutive_5xx: 2, fail_timeout: 5s}\n"
    plane = Plane("check: {type: none}\n" + passive + servers(S1, S2))
    for status in (500, 503):
        plane.controller.response_status(plane.view("s1"), status)
    assert plane.view("s1").state is ServerState.DOWN
    took = plane.clock.run_until(lambda: plane.view("s1").state is ServerState.UP, 60.0)
    assert took == pytest.approx(5.0, abs=1e-9)


# -- slow start -------------------------------------------------------------------------


def test_slow_start_steps_the_weight_up_at_each_step_and_is_full_at_the_end() -> None:
    s1 = "{name: s1, address: 127.0.0.1, port: 8001, weight: 20}"
    plane = Plane(tcp_check(rise=1, fall=1) + NO_PASSIVE + "slow_start: 10s\n" + servers(s1, S2))
    full = 20 * WEIGHT_SCALE
    assert plane.view("s1").weight == full  # no ramp for a server up at start
    plane.probe.failing.add(8001)
    plane.until_event("server.down", "be/s1")
    plane.probe.failing.clear()
    up = plane.until_event("server.up", "be/s1")
    up_at = plane.at(up)

    seen: list[tuple[float, int]] = [(0.0, plane.view("s1").weight)]
    while plane.clock.now() < up_at + 10.0:
        plane.clock.advance(0.25)
        seen.append((plane.clock.now() - up_at, plane.view("s1").weight))

    for since, weight in seen:
        assert weight == effective_weight(full, up_at, up_at + since, 10.0).weight, seen
    weights = [weight for _, weight in seen]
    assert weights == sorted(weights) and len(set(weights)) == 11, seen  # 10 steps
    assert weights[0] == full // 20  # about 5% to begin with
    assert [w for since, w in seen if since < 10.0][-1] < full
    assert weights[-1] == full
    assert plane.clock.next_deadline() is not None  # checks go on; no ramp timer left


def test_ramp_steps_publish_a_snapshot_only_when_the_weight_changes() -> None:
    s1 = "{name: s1, address: 127.0.0.1, port: 8001, weight: 3}"
    plane = Plane(tcp_check(rise=1, fall=1) + NO_PASSIVE + "slow_start: 10s\n" + servers(s1))
    plane.probe.failing.add(8001)
    plane.until_event("server.down", "be/s1")
    plane.probe.failing.clear()
    plane.until_event("server.up", "be/s1")
    versions = {plane.controller.runtime.snapshot.version}
    weights = [plane.view("s1").weight]
    for _ in range(40):
        plane.clock.advance(0.25)
        versions.add(plane.controller.runtime.snapshot.version)
        weights.append(plane.view("s1").weight)
    assert len(versions) == len(set(weights)), (versions, weights)


# -- backend-wide conditions ------------------------------------------------------------


def test_backup_is_used_from_the_moment_the_primary_goes_down_until_it_is_back() -> None:
    plane = Plane(tcp_check() + NO_PASSIVE + servers(S1, B1))
    plane.probe.failing.add(8001)
    in_use = plane.until_event("backend.backup_in_use", "be")
    (down,) = plane.events("server.down", "be/s1")
    assert plane.at(in_use) == plane.at(down)
    assert in_use.message == "backend be: no primary available, 1 backup server in use"

    plane.probe.failing.clear()
    over = plane.until_event("backend.backup_in_use_over", "be")
    (up,) = plane.events("server.up", "be/s1")
    assert plane.at(over) == plane.at(up)
    assert over.message == "backend be: primary servers available again, backups idle"


def test_degraded_below_min_healthy_at_the_second_server_down_then_healthy_again() -> None:
    plane = Plane(tcp_check() + NO_PASSIVE + 'min_healthy: "60%"\n' + servers(S1, S2, S3))
    plane.probe.failing.add(8001)
    plane.until_event("server.down", "be/s1")
    plane.clock.advance(10.0)
    assert plane.events("backend.degraded") == []  # 2 of 3 up is still enough

    plane.probe.failing.add(8002)
    degraded = plane.until_event("backend.degraded", "be")
    (second_down,) = plane.events("server.down", "be/s2")
    assert plane.at(degraded) == plane.at(second_down)
    assert degraded.message == "backend be degraded: 1 of 3 servers up, min_healthy 2"

    plane.probe.failing.discard(8002)
    healthy = plane.until_event("backend.degraded_over", "be")
    assert plane.at(healthy) == plane.at(plane.events("server.up", "be/s2")[0])
    assert healthy.message == "backend be healthy again: 2 of 3 servers up"


def test_all_down_makes_the_backend_unavailable_and_one_back_ends_it() -> None:
    plane = Plane(tcp_check(fall=2) + NO_PASSIVE + servers(S1, S2))
    plane.probe.failing.update({8001, 8002})
    unavailable = plane.until_event("backend.unavailable", "be")
    last_down = max(plane.at(e) for e in plane.events("server.down"))
    assert plane.at(unavailable) == last_down
    assert unavailable.message == ("backend be: no server available (HTTP frontend fe answers 503)")
    plane.probe.failing.discard(8002)
    over = plane.until_event("backend.unavailable_over", "be")
    assert plane.at(over) == plane.at(plane.events("server.up", "be/s2")[0])


def test_a_stopped_controller_checks_nothing_and_ends_no_ejection() -> None:
    passive = "passive: {max_fails: 1, fail_timeout: 10s}\n"
    plane = Plane(tcp_check() + passive + "slow_start: 10s\n" + servers(S1, S2))
    plane.controller.failure(plane.view("s1"), "connect refused")
    plane.controller.stop()
    checks = len(plane.probe.checks)
    plane.clock.advance(3600.0)
    assert plane.clock.next_deadline() is None
    assert len(plane.probe.checks) == checks
    assert plane.events("server.up") == []
