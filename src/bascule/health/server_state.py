"""The effective state and weight of one server, and the events that explain changes (pure).

`ServerStateMachine` owns everything that decides whether the data plane may send a
server new traffic, and how much:

* the admin state (config `initial_state` now, the admin API later): UP, DRAIN, MAINT;
* the active-check health counter (`state.HealthCounter`), when a check is configured;
* agent answers (HAProxy agent-check words): `drain`, `maint`, `ready`, `up`, `down`,
  and a weight percentage;
* a passive ejection decided by `outlier.BackendOutlier`;
* slow start (`slowstart.effective_weight`) after the server re-enters service.

Precedence, as in HAProxy: MAINT wins over everything; then DOWN (failed checks or an
ejection); then DRAIN (up, but no new traffic); else UP.

Agent words follow HAProxy's agent-check (configuration manual, "agent-check"):
"drain" and "maint" set the agent's own admin state, "ready" clears it, "down" marks
the server DOWN, "up" is a passing check, "75%" sets the weight relative to the
configured one. Parameters not advertised are left unchanged, and only the agent
reverts its own actions. One difference: in HAProxy the agent is a secondary check
whose connection failures are ignored; here `agent` is a check type of its own, so a
failed agent connection is a failed check that counts towards `fall`.

Time is a parameter. `view(now)` and `next_deadline(now)` do not change anything;
time-driven changes (the end of an ejection) produce their events from `tick(now)`,
which the caller runs at `next_deadline`. Every other input returns its events too.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from bascule.health.results import CheckResult
from bascule.health.slowstart import effective_weight
from bascule.health.state import (
    CheckTiming,
    HealthCounter,
    HealthTransition,
    InitialHealth,
    jittered,
)
from bascule.model import WEIGHT_SCALE, ServerState, ServerView, format_weight

AdminState = Literal["up", "drain", "maint"]
InitialState = Literal["up", "down", "drain", "maint", "check_first"]

MAX_WEIGHT = 256  # HAProxy's and our config's upper bound for a configured weight
IN_SERVICE = frozenset({ServerState.UP, ServerState.DRAIN})


@dataclass(frozen=True, slots=True)
class RiseFall:
    """The thresholds of a configured active check."""

    rise: int
    fall: int


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something a human should read in the journal: `kind`, `subject` ("web/s2"), text."""

    kind: str
    subject: str
    message: str
    level: int = logging.INFO
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class _Ejection:
    since: float
    until: float
    reason: str
    announced_over: bool = False


def agent_weight(configured: int, percent: int) -> int:
    """An agent's "75%" applied to the configured weight, both in internal units
    (`WEIGHT_SCALE` per configured unit), so that 50% of weight 1 is half its share.

    HAProxy (server_parse_weight_change_request) truncates the percentage of the
    configured weight to a whole weight, so 50% of weight 1 is 0 there, before it
    scales it by BE_WEIGHT_SCALE; we apply it to the scaled weight, round half up and
    keep at least one unit so that a server the agent still wants traffic on gets
    some. "0%" is 0: like HAProxy, such a server takes no new traffic. At most
    MAX_WEIGHT configured units, as in HAProxy.
    """
    if percent <= 0 or configured <= 0:
        return 0
    rounded = (configured * percent * 2 + 100) // 200
    return min(MAX_WEIGHT * WEIGHT_SCALE, max(1, rounded))


def format_span(seconds: float) -> str:
    """A measured time span: "12ms" below a second, "1.0s" from there."""
    if seconds < 0.9995:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:.1f}s"


class ServerStateMachine:
    """Decides one server's effective state and weight; returns events for each change."""

    def __init__(
        self,
        server: ServerView,
        *,
        initial_state: InitialState = "up",
        check: RiseFall | None = None,
        slow_start: float = 0.0,
    ) -> None:
        if initial_state not in get_args(InitialState):
            raise ValueError(
                f"server {server.key}: initial_state {initial_state!r} is not one of "
                f"{', '.join(get_args(InitialState))}"
            )
        self.server = server
        self.key = server.key
        self.slow_start = slow_start
        self._health = (
            HealthCounter(check.rise, check.fall, _initial_health(initial_state))
            if check is not None
            else None
        )
        # Without an active check nothing but the admin can bring a "down" server up.
        self._running_without_check = initial_state not in ("down", "check_first")
        self._admin: AdminState = "up"
        if initial_state == "drain" or initial_state == "maint":
            self._admin = initial_state
        self._agent_admin: AdminState = "up"
        self._agent_percent: int | None = None
        self._ejection: _Ejection | None = None
        # No slow start for servers that are up when we start (HAProxy: "slowstart never
        # applies when haproxy starts").
        self._in_service_since: float | None = None
        self._resumed_from_maint = False

    # -- queries (no side effects) ------------------------------------------------------

    @property
    def has_check(self) -> bool:
        return self._health is not None

    @property
    def health(self) -> HealthCounter | None:
        return self._health

    @property
    def checks_paused(self) -> bool:
        """Admin MAINT stops active checks (HAProxy). An agent's own "maint" does not:
        the agent must stay reachable to say "ready" again."""
        return self._admin == "maint"

    def state(self, now: float) -> ServerState:
        return self._compose(self.is_ejected(now))

    def view(self, now: float) -> ServerView:
        """The server as the data plane should see it at `now`."""
        state = self.state(now)
        weight = self._base_weight()
        if state is ServerState.UP:
            weight = effective_weight(weight, self._service_start(now), now, self.slow_start).weight
        return replace(self.server, state=state, weight=weight)

    def is_ejected(self, now: float) -> bool:
        """Kept out by passive ejection: its time is not over, or (with an active check)
        no check has passed since it was."""
        ejection = self._ejection
        if ejection is None:
            return False
        return now < ejection.until or self._health is not None

    def needs_check_to_return(self, now: float) -> bool:
        """The ejection time is over; only a passing active check brings it back."""
        ejection = self._ejection
        return ejection is not None and self._health is not None and now >= ejection.until

    def wants_check_now(self, now: float) -> bool:
        """A check result is wanted as soon as possible (after an ejection, or after
        leaving MAINT, where HAProxy "starts OK but checks immediately")."""
        return self.needs_check_to_return(now) or (
            self._resumed_from_maint and not self.checks_paused
        )

    def next_check_delay(self, timing: CheckTiming, rng: random.Random, now: float) -> float:
        """Seconds until this server's next active check."""
        health = self._require_check("next_check_delay")
        if self.wants_check_now(now):
            # The server is changing state: HAProxy's fastinter.
            return jittered(timing.fast_interval, timing.jitter, rng)
        return health.next_delay(timing, rng)

    def next_deadline(self, now: float) -> float | None:
        """When `view` changes or `tick` has something to say without any input."""
        deadlines: list[float] = []
        ejection = self._ejection
        if ejection is not None and not ejection.announced_over:
            deadlines.append(ejection.until)
        if self.state(now) is ServerState.UP:
            ramp = effective_weight(
                self._base_weight(), self._service_start(now), now, self.slow_start
            )
            if ramp.next_change is not None:
                deadlines.append(ramp.next_change)
        return min(deadlines) if deadlines else None

    # -- inputs (each returns the events it caused) --------------------------------------

    def tick(self, now: float) -> list[HealthEvent]:
        """Apply what time alone changes (the end of an ejection)."""
        ejection = self._ejection
        if ejection is None or now < ejection.until or ejection.announced_over:
            return []
        ejection.announced_over = True
        if self._health is not None:
            return [
                HealthEvent(
                    "server.ejection_over",
                    self.key,
                    f"server {self.key} ejection time over; back in traffic once an active "
                    "check passes",
                )
            ]
        before = self._compose(ejected=True)
        self._ejection = None
        duration = ejection.until - ejection.since
        return self._settle(
            before,
            ejection.until,
            lambda state: self._headline(state, f"ejection of {duration:g}s over"),
        )

    def check_result(self, result: CheckResult, now: float) -> list[HealthEvent]:
        """One active check (or agent) result."""
        health = self._require_check("check_result")
        if self._changes_nothing(result, health):
            health.record(result, now)
            return []
        events = self.tick(now)
        before = self._compose(self.is_ejected(now))
        before_weight = self._base_weight()
        self._resumed_from_maint = False
        if result.agent_state == "down":
            transition = health.force_down(result, now)
        else:
            transition = health.record(result, now)
        self._apply_agent(result)
        released = self._release_ejection(result, now)
        events += self._settle(
            before, now, lambda state: self._check_message(state, transition, result, released)
        )
        events += self._weight_event(before, before_weight, result, now)
        return events

    agent_result = check_result

    def _changes_nothing(self, result: CheckResult, health: HealthCounter) -> bool:
        """A plain pass for a server fully UP and not ejected: by far the most common
        result (1,000 a second on a large config), and one that can change no state,
        weight or event, so it skips the comparisons of the full path."""
        return (
            result.ok
            and result.agent_state is None
            and result.agent_weight_percent is None
            and health.health == health.maximum
            and self._ejection is None
            and not self._resumed_from_maint
        )

    def ejected(self, until: float, reason: str, now: float) -> list[HealthEvent]:
        """Passive ejection until `until` (decided by the backend's outlier detector).

        `reason` completes "server web/s1 DOWN: ..." (e.g. "3 consecutive failures on
        live traffic (last: connect refused); ejected for 10s").
        """
        events = self.tick(now)
        before = self._compose(self.is_ejected(now))
        self._ejection = _Ejection(since=now, until=until, reason=reason)
        message = f"server {self.key} DOWN: {reason}"
        if self._health is not None:
            message += ", then back once an active check passes"
        if self._compose(ejected=True) is before:
            return events  # already out of traffic for another reason: nothing to tell
        self._in_service_since = None
        event = HealthEvent(
            "server.ejected",
            self.key,
            message,
            logging.WARNING,
            {"state": ServerState.DOWN.value, "previous": before.value, "until": until},
        )
        return [*events, event]

    def admin(
        self, state: AdminState, now: float, reason: str = "set by the admin API"
    ) -> list[HealthEvent]:
        """Set the admin state: "up" (ready), "drain" or "maint"."""
        if state not in get_args(AdminState):
            raise ValueError(
                f"server {self.key}: admin state {state!r} is not one of up, drain, maint "
                "(DOWN is decided by checks, not set by hand)"
            )
        events = self.tick(now)
        before = self._compose(self.is_ejected(now))
        leaving_maint = self._admin == "maint" and state != "maint"
        self._admin = state
        if self._health is None:
            if state != "maint":
                self._running_without_check = True
        elif leaving_maint:
            self._health.resume_after_maintenance()
            self._resumed_from_maint = True
        events += self._settle(before, now, lambda new: self._headline(new, reason))
        return events

    # -- internals -------------------------------------------------------------------------

    def _compose(self, ejected: bool) -> ServerState:
        if self._admin == "maint" or self._agent_admin == "maint":
            return ServerState.MAINT
        if ejected or not self._operational_up():
            return ServerState.DOWN
        if self._admin == "drain" or self._agent_admin == "drain":
            return ServerState.DRAIN
        return ServerState.UP

    def _operational_up(self) -> bool:
        if self._health is not None:
            return self._health.is_up
        return self._running_without_check

    def _base_weight(self) -> int:
        if self._agent_percent is None:
            return self.server.weight
        return agent_weight(self.server.weight, self._agent_percent)

    def _service_start(self, now: float) -> float | None:
        ejection = self._ejection
        if ejection is not None and not self.is_ejected(now):
            return ejection.until  # ejection over but not ticked yet: it came back then
        return self._in_service_since

    def _require_check(self, method: str) -> HealthCounter:
        if self._health is None:
            raise ValueError(
                f"server {self.key} has no active check configured; {method}() is only for "
                "servers with `check.type` other than none"
            )
        return self._health

    def _apply_agent(self, result: CheckResult) -> None:
        words: dict[str | None, AdminState] = {"drain": "drain", "maint": "maint", "ready": "up"}
        if result.agent_state in words:
            self._agent_admin = words[result.agent_state]
        if result.agent_weight_percent is not None:
            self._agent_percent = result.agent_weight_percent

    def _release_ejection(self, result: CheckResult, now: float) -> bool:
        health = self._health
        if not self.needs_check_to_return(now) or health is None:
            return False
        if not (result.ok and health.is_up):
            return False
        self._ejection = None
        return True

    def _settle(
        self, before: ServerState, now: float, describe: Callable[[ServerState], str]
    ) -> list[HealthEvent]:
        """Compare with `before`; start the slow-start ramp when re-entering service."""
        after = self._compose(self.is_ejected(now))
        if after is before:
            return []
        if after in IN_SERVICE and before not in IN_SERVICE:
            self._in_service_since = now
        level = logging.WARNING if after is ServerState.DOWN else logging.INFO
        return [
            HealthEvent(
                f"server.{after.value}",
                self.key,
                describe(after),
                level,
                {"state": after.value, "previous": before.value},
            )
        ]

    def _headline(self, state: ServerState, reason: str) -> str:
        message = f"server {self.key} {state.name}: {reason}"
        if state is ServerState.DOWN:
            message += f"; {self._down_cause()}"
        return message

    def _down_cause(self) -> str:
        if self._ejection is not None:
            return "still ejected by passive detection"
        if self._health is not None:
            return f"waiting for {self._health.rise} passing checks"
        return "no active check is configured to bring it up"

    def _check_message(
        self,
        state: ServerState,
        transition: HealthTransition | None,
        result: CheckResult,
        released: bool,
    ) -> str:
        if transition is not None and not transition.up:
            if result.agent_state == "down":
                return f"server {self.key} DOWN: {result.reason}"  # its own word, no streak
            return f"server {self.key} DOWN: {result.reason} ({_failure_evidence(transition)})"
        if transition is not None and transition.up:
            message = f"server {self.key} UP after {transition.count}/{transition.needed} checks"
            if state is ServerState.DRAIN:
                message += ", draining: no new traffic"
            return message
        if released and state is ServerState.UP:
            return f"server {self.key} UP: ejection over, {result.reason}"
        return self._headline(state, result.reason)

    def _weight_event(
        self, before: ServerState, before_weight: int, result: CheckResult, now: float
    ) -> list[HealthEvent]:
        weight = self._base_weight()
        if weight == before_weight or self.state(now) is not before:
            return []
        return [
            HealthEvent(
                "server.weight",
                self.key,
                f"server {self.key} weight {format_weight(before_weight)} -> "
                f"{format_weight(weight)} ({self._agent_percent}% of configured "
                f"{format_weight(self.server.weight)}): {result.reason}",
                logging.INFO,
                {
                    "weight": weight / WEIGHT_SCALE,  # configured units, as in the text
                    "previous": before_weight / WEIGHT_SCALE,
                },
            )
        ]


def _initial_health(initial_state: InitialState) -> InitialHealth:
    if initial_state == "down" or initial_state == "check_first":
        return initial_state
    return "up"


def _failure_evidence(transition: HealthTransition) -> str:
    """ "3/3 consecutive failures over 1.0s": the span from the first failed check of the
    streak to the last, which took it DOWN (this event is at the last one)."""
    text = f"{transition.count}/{transition.needed}"
    if transition.failing_for is None:
        return f"{text} failures"
    return f"{text} consecutive failures over {format_span(transition.failing_for)}"
