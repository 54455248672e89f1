"""The active-check health counter of one server (pure: time and randomness are parameters).

This module owns HAProxy's single-counter model of check health and the choice of the
delay before the next check. It knows nothing about admin states, agents or live traffic;
`server_state.py` combines it with those.

The counter, as HAProxy's `set_server_check_status()` in src/check.c moves it:

* `health` lives in [0, rise+fall-1]; the server is UP iff `health >= rise`.
* A passing check: if `health < rise+fall-1`, `health += 1`, and as soon as it reaches
  `rise` it jumps to `rise+fall-1` ("OK now"). So a DOWN server needs `rise` passes in a
  row, and a single pass while UP restores full health.
* A failing check: if `health > 0`, `health -= 1`, and as soon as it drops below `rise` it
  falls to 0. So an UP server at full health needs `fall` failures in a row to go DOWN,
  and one failure while DOWN throws away the passes collected so far.

Starting points: `up` starts at full health (the agreed design; note that HAProxy itself
starts at `rise`, "up, but will fall down at first failure"), `down` at 0 (needs `rise`
passes), `check_first` at `rise-1` (one pass brings it UP, HAProxy's `init-state`-like
"check first"). Leaving maintenance restarts at `rise`, as HAProxy's
`srv_clr_admin_flag()` does ("start OK but check immediately").

The delay before the next check mirrors HAProxy's `srv_getinter()` in src/server.c:
`inter` when settled at full health, `downinter` when DOWN with health 0, `fastinter`
in between; `spread-checks` then moves it by a uniform +-jitter (src/check.c,
`process_chk`: `rv = inter * spread / 100; rv -= 2 * rv * random`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from bascule.health.results import CheckResult

InitialHealth = Literal["up", "down", "check_first"]

MAX_JITTER = 0.5


@dataclass(frozen=True, slots=True)
class CheckTiming:
    """How often one server is checked (seconds; `jitter` is a fraction, 0.1 = +-10%)."""

    interval: float
    fast_interval: float
    down_interval: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("interval", "fast_interval", "down_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"check {name} must be a positive number of seconds, got "
                    f"{getattr(self, name)!r}; use e.g. 2s"
                )
        if not 0.0 <= self.jitter <= MAX_JITTER:
            raise ValueError(
                f"check jitter must be between 0 and {MAX_JITTER:.0%}, got {self.jitter!r} "
                "(a fraction: 0.1 means +-10%)"
            )


@dataclass(frozen=True, slots=True)
class HealthTransition:
    """The counter crossed the UP/DOWN line; the evidence for the event text.

    `count` of `needed` checks in a row passed (`up`) or failed (not `up`), e.g. 2 of 2
    for "UP after 2/2 checks". `failing_for` is the time in seconds from the first failed
    check of the streak to this one, the last (None when the streak is this single
    failure, or when the server went UP): "3 consecutive failures over 1.0s".
    """

    up: bool
    count: int
    needed: int
    result: CheckResult
    failing_for: float | None = None


class HealthCounter:
    """HAProxy's check health counter for one server, with the streaks behind it."""

    def __init__(self, rise: int, fall: int, initial: InitialHealth = "up") -> None:
        if rise < 1 or fall < 1:
            raise ValueError(
                f"check rise and fall must both be at least 1, got rise={rise} fall={fall}; "
                "rise is how many passing checks bring a server UP, fall how many failing "
                "ones take it DOWN"
            )
        self.rise = rise
        self.fall = fall
        self.maximum = rise + fall - 1
        self._health = {"up": self.maximum, "down": 0, "check_first": rise - 1}[initial]
        # Streak evidence for the event texts, reset whenever the streak breaks.
        self._passes = 0
        self._passes_needed = 0
        self._failures = 0
        self._failures_needed = 0
        self._first_failure_at = 0.0  # of the streak `_failures` counts

    @property
    def health(self) -> int:
        return self._health

    @property
    def is_up(self) -> bool:
        return self._health >= self.rise

    def record(self, result: CheckResult, now: float) -> HealthTransition | None:
        """Move the counter for one check result; return the transition if UP/DOWN changed."""
        if result.ok:
            return self._passed(result)
        return self._failed(result, now)

    def force_down(self, result: CheckResult, now: float) -> HealthTransition | None:
        """The server said it is down (agent "down"): DOWN at once.

        HAProxy gives the agent check its own counter with rise = fall = 1
        (DEF_AGENT_RISETIME / DEF_AGENT_FALLTIME in include/haproxy/defaults.h), so an
        explicit "down" takes the server out on the first answer.
        """
        was_up = self.is_up
        self._health = 0
        self._passes = self._failures = 0
        if not was_up:
            return None
        return HealthTransition(up=False, count=1, needed=1, result=result)

    def resume_after_maintenance(self) -> None:
        """Leaving MAINT: UP again, but the first failed check takes it DOWN (HAProxy)."""
        self._health = self.rise
        self._passes = self._failures = 0

    def next_delay(self, timing: CheckTiming, rng: random.Random) -> float:
        """Seconds until the next check: HAProxy's srv_getinter() plus spread-checks jitter."""
        if self._health == self.maximum:
            base = timing.interval
        elif self._health == 0:
            base = timing.down_interval
        else:
            base = timing.fast_interval
        return jittered(base, timing.jitter, rng)

    def _passed(self, result: CheckResult) -> HealthTransition | None:
        self._failures = 0
        if self._health >= self.maximum:
            return None
        was_up = self.is_up
        if not was_up:
            if self._passes == 0:
                self._passes_needed = self.rise - self._health
            self._passes += 1
        self._health += 1
        if self._health >= self.rise:
            self._health = self.maximum  # "OK now": it takes `fall` failures to go DOWN
        if was_up or not self.is_up:
            return None
        transition = HealthTransition(
            up=True, count=self._passes, needed=self._passes_needed, result=result
        )
        self._passes = 0
        return transition

    def _failed(self, result: CheckResult, now: float) -> HealthTransition | None:
        self._passes = 0
        if not self.is_up:
            self._health = 0  # one failure throws away the passes collected while DOWN
            return None
        if self._failures == 0:
            self._failures_needed = self._health - self.rise + 1
            self._first_failure_at = now
        self._failures += 1
        self._health -= 1
        if self._health >= self.rise:
            return None
        self._health = 0
        transition = HealthTransition(
            up=False,
            count=self._failures,
            needed=self._failures_needed,
            result=result,
            failing_for=now - self._first_failure_at if self._failures > 1 else None,
        )
        self._failures = 0
        return transition


def jittered(delay: float, jitter: float, rng: random.Random) -> float:
    """`delay` moved by a uniform amount in [-jitter, +jitter] of itself."""
    if jitter <= 0:
        return delay
    return rng.uniform(delay * (1 - jitter), delay * (1 + jitter))
