"""Passive detection and outlier ejection for one backend (pure: time is a parameter).

`BackendOutlier` owns the live-traffic side of health: failure streaks per server,
how long an ejection lasts, and how much of the backend may be ejected at once. It
supersedes `control.passive.PassiveDetector` and keeps its observable behaviour:
`max_fails` consecutive failures on live traffic (connect refused or timed out, reset,
I/O error, server timeout, malformed response) eject the server for `fail_timeout`
seconds, a success resets the streak, failures on a server already out of traffic do
not count, and a fresh streak is needed after it comes back (nginx `max_fails` /
`fail_timeout`, HAProxy `observe layer4`).

New rules, after Envoy's outlier detection (architecture overview, "Ejection
algorithm"; OutlierDetection proto):

* `consecutive_5xx` (> 0 turns it on): that many 5xx responses in a row eject too.
  `response_status()` feeds it; any other status ends the 5xx streak. Transport
  failures keep their own streak (`max_fails`).
* Repeat ejections last longer: `fail_timeout * 2**(n-1)` for the n-th ejection in a row,
  capped at `max_ejection_time`; n restarts once the server has stayed in for
  `max_ejection_time` after its last ejection ended. (Envoy multiplies the base time by
  n; the agreed design doubles it.)
* `max_ejected_percent` caps the share of the backend's servers ejected at once; a
  server the cap keeps in gets an event saying so, once per failure streak. As in Envoy,
  one server may always be ejected when none is ("will eject at least one host
  regardless of the value").

The end of an ejection, and the rule that a server with an active check returns only
once a check passes after it, belong to each `ServerStateMachine`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bascule.health.server_state import HealthEvent, ServerStateMachine
from bascule.model import ServerState

MAX_DOUBLINGS = 60  # beyond this any sane max_ejection_time is long reached; avoids huge floats


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """The `passive:` settings of one backend (0 turns a counter off)."""

    max_fails: int = 3
    fail_timeout: float = 10.0
    consecutive_5xx: int = 0
    max_ejection_time: float = 300.0
    max_ejected_percent: int = 50

    def __post_init__(self) -> None:
        if self.max_fails < 0 or self.consecutive_5xx < 0:
            raise ValueError(
                f"passive max_fails ({self.max_fails}) and consecutive_5xx "
                f"({self.consecutive_5xx}) must be 0 (off) or more"
            )
        if self.fail_timeout <= 0 or self.max_ejection_time <= 0:
            raise ValueError(
                f"passive fail_timeout ({self.fail_timeout!r}) and max_ejection_time "
                f"({self.max_ejection_time!r}) must be positive durations, e.g. 10s and 300s"
            )
        if not 0 <= self.max_ejected_percent <= 100:
            raise ValueError(
                f"passive max_ejected_percent must be between 0 and 100, got "
                f"{self.max_ejected_percent}"
            )

    def ejection_time(self, ejections_in_a_row: int) -> float:
        """How long the n-th ejection in a row lasts (n >= 1)."""
        doublings = min(max(ejections_in_a_row - 1, 0), MAX_DOUBLINGS)
        return min(self.fail_timeout * float(2**doublings), self.max_ejection_time)


@dataclass(slots=True)
class _Record:
    failures: int = 0
    errors_5xx: int = 0
    ejections_in_a_row: int = 0
    last_ejection_end: float | None = None
    cap_reported: bool = False


class BackendOutlier:
    """Counts live-traffic failures for all servers of one backend and ejects outliers."""

    def __init__(
        self, backend: str, policy: OutlierPolicy, machines: Sequence[ServerStateMachine]
    ) -> None:
        self.backend = backend
        self.policy = policy
        self._machines = {m.key: m for m in machines}
        self._records = {m.key: _Record() for m in machines}

    def failure(self, key: str, reason: str, now: float) -> list[HealthEvent]:
        """One failure on live traffic (connect, reset, timeout...)."""
        record = self._records.get(key)
        if record is None or self.policy.max_fails <= 0 or not self._in_rotation(key, now):
            return []
        record.failures += 1
        if record.failures < self.policy.max_fails:
            return []
        n = record.failures
        noun = "failure" if n == 1 else "consecutive failures"
        cause = f"{n} {noun} on live traffic (last: {reason})"
        return self._eject(key, record, cause, now)

    def success(self, key: str) -> None:
        """A successful exchange: the transport failure streak is over."""
        record = self._records.get(key)
        if record is not None and record.failures:
            record.failures = 0
            record.cap_reported = False

    def response_status(self, key: str, status: int, now: float) -> list[HealthEvent]:
        """An HTTP response status from the server: counts towards `consecutive_5xx`."""
        record = self._records.get(key)
        if record is None or self.policy.consecutive_5xx <= 0:
            return []
        if not 500 <= status <= 599:
            if record.errors_5xx:
                record.errors_5xx = 0
                record.cap_reported = False
            return []
        if not self._in_rotation(key, now):
            return []
        record.errors_5xx += 1
        if record.errors_5xx < self.policy.consecutive_5xx:
            return []
        n = record.errors_5xx
        noun = "5xx response" if n == 1 else "consecutive 5xx responses"
        cause = f"{n} {noun} (last: {status})"
        return self._eject(key, record, cause, now)

    def ejected_count(self, now: float) -> int:
        return sum(1 for m in self._machines.values() if m.is_ejected(now))

    def ejections_in_a_row(self, key: str) -> int:
        record = self._records.get(key)
        return record.ejections_in_a_row if record is not None else 0

    def _in_rotation(self, key: str, now: float) -> bool:
        # Failures of in-flight requests to a server already out are stragglers, not news.
        return self._machines[key].state(now) is ServerState.UP

    def _eject(self, key: str, record: _Record, cause: str, now: float) -> list[HealthEvent]:
        if not self._cap_allows_one_more(now):
            return self._capped(key, record, now)
        record.failures = record.errors_5xx = 0
        record.cap_reported = False
        if self._clean_since_last_ejection(record, now):
            record.ejections_in_a_row = 0
        record.ejections_in_a_row += 1
        duration = self.policy.ejection_time(record.ejections_in_a_row)
        record.last_ejection_end = now + duration
        reason = f"{cause}; ejected for {duration:g}s"
        if record.ejections_in_a_row > 1:
            reason += (
                f" (ejection {record.ejections_in_a_row} in a row, "
                f"max_ejection_time {self.policy.max_ejection_time:g}s)"
            )
        return self._machines[key].ejected(now + duration, reason, now)

    def _clean_since_last_ejection(self, record: _Record, now: float) -> bool:
        end = record.last_ejection_end
        return end is None or now - end >= self.policy.max_ejection_time

    def _cap_allows_one_more(self, now: float) -> bool:
        ejected = self.ejected_count(now)
        if ejected == 0:
            return True  # Envoy: at least one host may always be ejected
        total = len(self._machines)
        return (ejected + 1) * 100 <= self.policy.max_ejected_percent * total

    def _capped(self, key: str, record: _Record, now: float) -> list[HealthEvent]:
        if record.cap_reported:
            return []
        record.cap_reported = True
        ejected = self.ejected_count(now)
        total = len(self._machines)
        name = self._machines[key].server.name
        message = (
            f"backend {self.backend}: {name} not ejected: {ejected} of {total} servers "
            f"({ejected * 100 / total:.0f}%) already ejected, max_ejected_percent "
            f"{self.policy.max_ejected_percent}"
        )
        return [
            HealthEvent(
                "server.ejection_capped",
                key,
                message,
                logging.WARNING,
                {"ejected": ejected, "servers": total},
            )
        ]
