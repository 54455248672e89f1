"""Runs active health checks on the event loop and hands results to the control plane.

One timer per checked server; each check runs as its own task, so a slow or
hanging check delays nobody else (every probe is bounded by its timeout). The
first check of each server is spread over one interval so a large config does
not check everything at once (HAProxy spreads its first checks the same way).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from bascule.config import CheckConfig
from bascule.health.probes import (
    AgentCheckSpec,
    CheckSpec,
    CommandCheckSpec,
    HttpCheckSpec,
    TcpCheckSpec,
    run_check,
)
from bascule.health.results import CheckResult
from bascule.health.server_state import ServerStateMachine
from bascule.health.state import CheckTiming

log = logging.getLogger("bascule.health")

ResultSink = Callable[[str, CheckResult], None]


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


class HealthRunner:
    """Schedules every planned check; results go to `sink(server_key, result)`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        plans: list[CheckPlan],
        machines: dict[str, ServerStateMachine],
        sink: ResultSink,
        rng: random.Random | None = None,
    ) -> None:
        self.loop = loop
        self.plans = {p.key: p for p in plans}
        self.machines = machines
        self.sink = sink
        self.rng = rng or random.Random()
        self._timers: dict[str, asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    def start(self) -> None:
        for key, plan in self.plans.items():
            first = self.rng.uniform(0, plan.timing.interval)
            self._timers[key] = self.loop.call_later(first, self._due, key)

    def check_soon(self, key: str) -> None:
        """Run this server's next check now (e.g. after an ejection time is over)."""
        if key in self.plans and not self._stopped:
            handle = self._timers.pop(key, None)
            if handle is not None:
                handle.cancel()
                self._timers[key] = self.loop.call_soon(self._due, key)

    def _due(self, key: str) -> None:
        self._timers.pop(key, None)
        if self._stopped:
            return
        if self.machines[key].checks_paused:  # MAINT: no checks, look again later
            self._schedule(key)
            return
        task = self.loop.create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str) -> None:
        plan = self.plans[key]
        try:
            result = await run_check(plan.spec)
        except Exception as exc:  # a probe bug must not stop this server's checks
            log.exception("health check of %s crashed", key)
            result = CheckResult(False, f"{plan.spec.type} check: internal error: {exc}")
        if self._stopped:
            return
        self.sink(key, result)
        self._schedule(key)

    def _schedule(self, key: str) -> None:
        plan = self.plans[key]
        delay = self.machines[key].next_check_delay(plan.timing, self.rng, self.loop.time())
        self._timers[key] = self.loop.call_later(delay, self._due, key)

    def stop(self) -> None:
        self._stopped = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
