"""The control plane: server state per backend, published to the data plane.

Three inputs decide a server's state, each through pure code in `bascule.health`:
active check results (`HealthRunner` → `ServerStateMachine.check_result`),
live-traffic outcomes (the data plane's `OutcomeSink` calls → `BackendOutlier`)
and time (ejection ends, slow-start steps → `tick`). Every change is recorded in
the journal with its reason and published as a new immutable snapshot. The data
plane never asks "is this server healthy?": it only picks from snapshots.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from bascule.clock import Clock, Timer
from bascule.config import BackendConfig, CheckConfig, FrontendConfig
from bascule.config.diff import same_server
from bascule.control.journal import Journal
from bascule.health.outlier import BackendOutlier, OutlierPolicy
from bascule.health.results import CheckResult
from bascule.health.runner import CheckPlan, HealthRunner, SharedChecks, build_spec
from bascule.health.server_state import HealthEvent, RiseFall, ServerStateMachine
from bascule.health.state import CheckTiming
from bascule.model import WEIGHT_SCALE, BackendSnapshot, ServerState, ServerView
from bascule.proxy.runtime import BackendRuntime


def static_views(config: BackendConfig, addresses: dict[str, str]) -> tuple[ServerView, ...]:
    """Each server as configured (weight in internal units, limits), before any health
    is known."""
    return tuple(
        ServerView(
            backend=config.name,
            name=s.name,
            host=addresses.get(s.name, s.address),
            port=s.port,
            weight=s.weight * WEIGHT_SCALE,
            backup=s.backup,
            max_connections=s.max_connections,
            index=i,
        )
        for i, s in enumerate(config.servers)
    )


class BackendController:
    """Decides the state of one backend's servers and publishes snapshots."""

    def __init__(
        self,
        config: BackendConfig,
        addresses: dict[str, str],
        journal: Journal,
        clock: Clock,
        rng: random.Random | None = None,
        shared_checks: SharedChecks | None = None,
        frontends: Sequence[FrontendConfig] = (),
        carried: BackendController | None = None,
    ) -> None:
        """`frontends` are those that use this backend, named in its events. `carried`:
        the controller this one replaces on reload; the state of each unchanged server
        (health, ejection, slow start, admin state: see `config.diff.same_server`) and
        the backend's conditions go on here."""
        self.config = config
        self._unavailable = unavailable_text(config.name, frontends)
        self.journal = journal
        self.clock = clock
        self.version = 1
        views = static_views(config, addresses)
        kept, admin_events = _unchanged_machines(carried, config, views, clock.now())
        self.machines = {
            view.key: kept.get(view.key)
            or ServerStateMachine(
                view,
                initial_state=server.initial_state,
                check=_rise_fall(server.check),
                slow_start=config.slow_start,
            )
            for view, server in zip(views, config.servers, strict=True)
        }
        passive = config.passive
        self.outlier = BackendOutlier(
            config.name,
            OutlierPolicy(
                max_fails=passive.max_fails,
                fail_timeout=passive.fail_timeout,
                consecutive_5xx=passive.consecutive_5xx,
                max_ejection_time=passive.max_ejection_time,
                max_ejected_percent=passive.max_ejected_percent,
            ),
            list(self.machines.values()),
        )
        now = clock.now()
        self.runtime = BackendRuntime(config, self._snapshot(now), self, rng)
        self.runner = HealthRunner(
            clock, _check_plans(config, views), self.machines, self.check_result, rng, shared_checks
        )
        self._tick_handle: Timer | None = None
        self._stopped = False
        self._conditions: set[str] = set(carried._conditions) if carried else set()
        self._note_conditions(initial=True)
        if admin_events:
            self._apply(admin_events)

    def start(self) -> None:
        self.runner.start()
        self._schedule_tick()

    # -- inputs --------------------------------------------------------------------

    def failure(self, server: ServerView, reason: str) -> None:
        """OutcomeSink: a connect error, reset or timeout on live traffic."""
        if self._stopped:
            return  # replaced by a reload: its servers' state lives on in the new one
        events = self.outlier.failure(server.key, reason, self.clock.now())
        if events:
            self._apply(events)

    def success(self, server: ServerView) -> None:
        """OutcomeSink: an exchange or session completed."""
        self.outlier.success(server.key)

    def response_status(self, server: ServerView, status: int) -> None:
        """OutcomeSink (HTTP): a response status, for consecutive-5xx ejection."""
        if self._stopped:
            return  # replaced by a reload: its servers' state lives on in the new one
        events = self.outlier.response_status(server.key, status, self.clock.now())
        if events:
            self._apply(events)

    def check_result(self, key: str, result: CheckResult) -> None:
        machine = self.machines.get(key)
        if machine is None or self._stopped:
            return  # a check that ended after a reload replaced this controller
        events = machine.check_result(result, self.clock.now())
        if events:
            self._apply(events)

    # -- publishing -------------------------------------------------------------------

    def _snapshot(self, now: float) -> BackendSnapshot:
        return BackendSnapshot(
            self.config.name, tuple(m.view(now) for m in self.machines.values()), self.version
        )

    def _apply(self, events: list[HealthEvent]) -> None:
        now = self.clock.now()
        for event in events:
            self.journal.record(
                event.kind, event.subject, event.message, event.level, **event.fields
            )
        snapshot = self._snapshot(now)
        old = self.runtime.snapshot
        changed = [
            new
            for new, before in zip(snapshot.servers, old.servers, strict=True)
            if (new.state, new.weight) != (before.state, before.weight)
        ]
        if changed:
            self.version += 1
            self.runtime.install(BackendSnapshot(snapshot.name, snapshot.servers, self.version))
            self._after_publish(changed)
        for machine in self.machines.values():
            if machine.wants_check_now(now):
                self.runner.check_soon(machine.key)
        self._schedule_tick()

    def _after_publish(self, changed: list[ServerView]) -> None:
        if self.config.on_down == "shutdown_sessions":
            for server in changed:
                if server.state is ServerState.DOWN:
                    closed = self.runtime.shutdown_sessions(server.key)
                    if closed:
                        self.journal.record(
                            "server.sessions_shutdown",
                            server.key,
                            f"server {server.key}: closed {closed} connection"
                            f"{'s' if closed != 1 else ''} (on_down: shutdown_sessions)",
                            logging.WARNING,
                        )
        self._note_conditions()

    def _note_conditions(self, initial: bool = False) -> None:
        """Backend-wide conditions: backups in use, degraded below min_healthy, unavailable."""
        servers = self.runtime.snapshot.servers
        name = self.config.name
        primaries_up = [s for s in servers if not s.backup and s.takes_new_traffic]
        backups_up = [s for s in servers if s.backup and s.takes_new_traffic]
        up_count = sum(1 for s in servers if s.state is ServerState.UP)
        threshold = self.config.min_healthy.threshold(len(servers))
        now: dict[str, tuple[bool, str, str, int]] = {
            "backend.backup_in_use": (
                not primaries_up and bool(backups_up),
                f"backend {name}: no primary available, {len(backups_up)} backup server"
                f"{'s' if len(backups_up) != 1 else ''} in use",
                f"backend {name}: primary servers available again, backups idle",
                logging.WARNING,
            ),
            "backend.degraded": (
                threshold > 0 and up_count < threshold,
                f"backend {name} degraded: {up_count} of {len(servers)} servers up, "
                f"min_healthy {threshold}",
                f"backend {name} healthy again: {up_count} of {len(servers)} servers up",
                logging.WARNING,
            ),
            "backend.unavailable": (
                not primaries_up and not backups_up,
                self._unavailable,
                f"backend {name}: servers available again",
                logging.ERROR,
            ),
        }
        for kind, (active, on_text, off_text, level) in now.items():
            if active and kind not in self._conditions:
                self._conditions.add(kind)
                self.journal.record(kind, name, on_text, level)
            elif not active and kind in self._conditions:
                self._conditions.discard(kind)
                if not initial:
                    self.journal.record(kind + "_over", name, off_text, logging.INFO)

    def _schedule_tick(self) -> None:
        if self._stopped:
            return
        now = self.clock.now()
        deadlines = [d for m in self.machines.values() if (d := m.next_deadline(now)) is not None]
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if deadlines:
            self._tick_handle = self.clock.call_at(max(min(deadlines), now), self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        now = self.clock.now()
        events: list[HealthEvent] = []
        for machine in self.machines.values():
            events += machine.tick(now)
        self._apply(events)

    def stop(self) -> None:
        self._stopped = True
        self.runner.stop()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None


# What the clients of a frontend of each mode get while its backend has no server,
# said of one frontend and of several.
_UNAVAILABLE_EFFECTS = {
    "http": ("answers 503", "answer 503"),
    "tcp": ("closes new connections at once", "close new connections at once"),
}


def unavailable_text(backend: str, frontends: Sequence[FrontendConfig]) -> str:
    """ "backend app: no server available (HTTP frontend web answers 503)": what the
    clients of the frontends that use it get, by mode; only what applies."""
    effects = []
    for mode, (one, several) in _UNAVAILABLE_EFFECTS.items():
        names = [frontend.name for frontend in frontends if frontend.mode == mode]
        if len(names) == 1:
            effects.append(f"{mode.upper()} frontend {names[0]} {one}")
        elif names:
            effects.append(f"{mode.upper()} frontends {', '.join(names)} {several}")
    consequence = "; ".join(effects) or "no frontend uses it"
    return f"backend {backend}: no server available ({consequence})"


def _unchanged_machines(
    carried: BackendController | None,
    config: BackendConfig,
    views: tuple[ServerView, ...],
    now: float,
) -> tuple[dict[str, ServerStateMachine], list[HealthEvent]]:
    """The state machines of `carried` for the servers a reload left unchanged, given
    their new view (weight, place) and the backend's slow start; and the events of an
    `initial_state` of up, drain or maint changed in the file, applied as an admin
    action. A server whose initial_state changed to down or check_first starts over."""
    if carried is None:
        return {}, []
    before = {server.name: server for server in carried.config.servers}
    kept = {}
    events: list[HealthEvent] = []
    for view, server in zip(views, config.servers, strict=True):
        old = before.get(server.name)
        machine = carried.machines.get(view.key)
        if old is None or machine is None or not same_server(old, server):
            continue
        if machine.server.host != view.host:
            continue  # the same name now resolves elsewhere: another server
        wanted = server.initial_state
        if wanted != old.initial_state and wanted in ("down", "check_first"):
            continue
        machine.server = view
        machine.slow_start = config.slow_start
        if wanted != old.initial_state and wanted in ("up", "drain", "maint"):
            events += machine.admin(wanted, now, f"initial_state {wanted} in the reloaded file")
        kept[view.key] = machine
    return kept, events


def _rise_fall(check: CheckConfig) -> RiseFall | None:
    if check.type == "none":
        return None
    return RiseFall(rise=check.rise, fall=check.fall)


def _check_plans(config: BackendConfig, views: tuple[ServerView, ...]) -> list[CheckPlan]:
    plans = []
    for view, server in zip(views, config.servers, strict=True):
        check = server.check
        if check.type == "none":
            continue
        spec = build_spec(check, view.host, view.port, config.name, server.name)
        timing = CheckTiming(
            interval=check.interval,
            fast_interval=check.fast_interval,
            down_interval=check.down_interval,
            jitter=check.jitter,
        )
        plans.append(CheckPlan(view.key, spec, timing))
    return plans
