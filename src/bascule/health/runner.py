"""Runs active health checks on the event loop and hands results to the control plane.

Checks are timed on `TickTimers` (one loop timer for all servers, checks due around
the same tick run together). TCP, HTTP and agent checks of an address run on a
shared `Connector` (one epoll set, reused sockets, no task: the cheapest way to do
1,000 a second); checks of a host name and command checks run as a task each.
Either way a slow or hanging check delays nobody else (every probe is bounded by
its timeout). All runners of one process share one `SharedChecks`, so checks of every
backend due in the same tick start together. The
first check of each server is spread over one interval so a large config does
not check everything at once (HAProxy spreads its first checks the same way).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from bascule.clock import Clock, Timer
from bascule.config import CheckConfig
from bascule.errors import LocalResourceError, is_local_resource_error
from bascule.health.connector import Connector
from bascule.health.probes import (
    AgentCheckSpec,
    CheckSpec,
    CommandCheckSpec,
    HttpCheckSpec,
    TcpCheckSpec,
    run_check,
    start_check,
)
from bascule.health.results import CheckResult
from bascule.health.server_state import ServerStateMachine
from bascule.health.state import CheckTiming
from bascule.health.ticks import TickHandle, TickTimers, tick_for
from bascule.logthrottle import ThrottledLog

log = logging.getLogger("bascule.health")

ResultSink = Callable[[str, CheckResult], None]
# Starts one check whose result goes to the callback later, from the loop; False (and
# nothing started) when it must run as a task instead (`probes.run_check`). The daemon
# uses `probes.start_check` on a `Connector`; unit tests pass scripted results.
StartCheck = Callable[[CheckSpec, Callable[[CheckResult], None]], bool]


@dataclass(frozen=True)
class CheckPlan:
    """Everything needed to check one server: what to run and how often."""

    key: str
    spec: CheckSpec
    timing: CheckTiming


def build_spec(check: CheckConfig, host: str, port: int, backend: str, server: str) -> CheckSpec:
    """A probe spec from a server's effective `CheckConfig` (see bascule.config)."""
    kind = check.type
    timeout = check.timeout
    target_port = check.port or port
    if kind == "tcp":
        return TcpCheckSpec(host=host, port=target_port, timeout=timeout)
    if kind == "http":
        http = check.http
        assert http is not None  # the config requires the http block for type http
        return HttpCheckSpec(
            host=host,
            port=target_port,
            timeout=timeout,
            path=http.path,
            method=http.method,
            host_header=http.host,
            expect_status=tuple(http.expect_status),
            expect_body=http.expect_body,
            expect_body_regex=_compiled(http.expect_body_regex),
            max_body=http.max_body,
        )
    if kind == "command":
        command = check.command
        assert command is not None
        return CommandCheckSpec(
            host=host,
            port=target_port,
            timeout=timeout,
            path=command.path,
            args=tuple(command.args),
            backend=backend,
            server=server,
        )
    if kind == "agent":
        agent = check.agent
        assert agent is not None
        return AgentCheckSpec(host=host, port=agent.port, timeout=timeout, send=agent.send or "")
    raise ValueError(f"server {backend}/{server}: no probe for check type {kind!r}")


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


class SharedChecks:
    """The tick timers and TCP connector that all health runners of a process share."""

    def __init__(
        self, clock: Clock, intervals: Iterable[float], start: StartCheck | None = None
    ) -> None:
        """`intervals`: every check interval the runners will use (sets the tick).
        Without `start`, checks run on a `Connector` on the running event loop."""
        self.timers = TickTimers(clock, tick_for(intervals))
        self._connector: Connector | None = None
        if start is None:
            self._connector = connector = Connector(asyncio.get_running_loop())
            start = partial(start_check, connector)
        self.start = start

    def close(self) -> None:
        self.timers.close()
        if self._connector is not None:
            self._connector.close()


class _HasIntervals(Protocol):
    """A `CheckTiming`, or a `CheckConfig` from the config: both name them alike."""

    @property
    def interval(self) -> float: ...

    @property
    def fast_interval(self) -> float: ...

    @property
    def down_interval(self) -> float: ...


def check_intervals(checks: Iterable[_HasIntervals]) -> Iterator[float]:
    """Every interval these checks use (what `SharedChecks` sets its tick from)."""
    for check in checks:
        yield from (check.interval, check.fast_interval, check.down_interval)


class HealthRunner:
    """Schedules every planned check; results go to `sink(server_key, result)`."""

    def __init__(
        self,
        clock: Clock,
        plans: list[CheckPlan],
        machines: dict[str, ServerStateMachine],
        sink: ResultSink,
        rng: random.Random | None = None,
        shared: SharedChecks | None = None,
    ) -> None:
        self.clock = clock
        self.plans = {p.key: p for p in plans}
        self.machines = machines
        self.sink = sink
        self.rng = rng or random.Random()
        # Without a process-wide one (tests, tools), this runner owns its own.
        self._owns_shared = shared is None
        self._shared = shared or SharedChecks(clock, check_intervals(p.timing for p in plans))
        self._timers: dict[str, Timer | TickHandle] = {}
        # Bound once per server rather than on every check (1,000 a second).
        self._due_calls = {key: partial(self._due, key) for key in self.plans}
        self._finish_calls = {key: partial(self._finish, key) for key in self.plans}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        # Checks that could not run for want of a resource of ours (EMFILE...): no
        # verdict on their server; counted (for the admin API and metrics) and logged.
        self.local_errors = 0
        self._local_log = ThrottledLog(log, logging.WARNING)

    def start(self) -> None:
        timers = self._shared.timers
        for key, plan in self.plans.items():
            first = self.rng.uniform(0, plan.timing.interval)
            self._timers[key] = timers.call_later(first, self._due_calls[key])

    def check_soon(self, key: str) -> None:
        """Run this server's next check now (e.g. after an ejection time is over)."""
        if key in self.plans and not self._stopped:
            handle = self._timers.pop(key, None)
            if handle is not None:
                handle.cancel()
                self._timers[key] = self.clock.call_soon(self._due_calls[key])

    def _due(self, key: str) -> None:
        self._timers.pop(key, None)
        if self._stopped:
            return
        if self.machines[key].checks_paused:  # MAINT: no checks, look again later
            self._schedule(key)
            return
        spec = self.plans[key].spec
        try:
            if self._shared.start(spec, self._finish_calls[key]):
                return
        except Exception as exc:  # check again later either way
            if is_local_resource_error(exc):  # no socket for it (EMFILE...): no verdict
                reason = LocalResourceError(exc.errno or 0).reason
                self._finish(
                    key, CheckResult(False, f"{spec.type} check: {reason}", 0.0, local_error=True)
                )
            else:
                log.warning("health check of %s could not start: %s", key, exc)
                self._finish(key, CheckResult(False, f"{spec.type} check: cannot start: {exc}"))
            return
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str) -> None:
        plan = self.plans[key]
        try:
            result = await run_check(plan.spec)
        except Exception as exc:  # a probe bug must not stop this server's checks
            log.exception("health check of %s crashed", key)
            result = CheckResult(False, f"{plan.spec.type} check: internal error: {exc}")
        self._finish(key, result)

    def _finish(self, key: str, result: CheckResult) -> None:
        if self._stopped:
            return
        try:
            if result.local_error:
                self._skipped(key, result)
            else:
                self.sink(key, result)
        finally:  # whatever the sink did, this server keeps being checked
            self._schedule(key)

    def _skipped(self, key: str, result: CheckResult) -> None:
        self.local_errors += 1
        self._local_log.log(
            self.clock.now(),
            f"health check of {key} not run: {result.reason}; the server's state is "
            "unchanged (a shortage of the load balancer's own says nothing about it)",
        )

    def _schedule(self, key: str) -> None:
        plan = self.plans[key]
        delay = self.machines[key].next_check_delay(plan.timing, self.rng, self.clock.now())
        self._timers[key] = self._shared.timers.call_later(delay, self._due_calls[key])

    def stop(self) -> None:
        self._stopped = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._owns_shared:
            self._shared.close()
