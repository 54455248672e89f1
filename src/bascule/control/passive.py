"""Passive failure detection for one backend (pure: time is a parameter).

Like nginx `max_fails`/`fail_timeout`: after `max_fails` consecutive failures
observed on live traffic (connect refused or timed out, reset, I/O error,
server timeout, malformed response) a server is taken out of rotation for
`fail_timeout` seconds, then tried again. A success resets the count.

The machine takes observations and returns what changed; the caller turns
that into a new snapshot and events. Active health checks (a later layer)
will decide instead of the timer when they are configured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bascule.model import ServerState, ServerView


@dataclass(frozen=True, slots=True)
class Transition:
    """A server changed state; `reason` is the human sentence for the journal."""

    server: ServerView
    old: ServerState
    new: ServerState
    reason: str


@dataclass(slots=True)
class _Tracker:
    consecutive_failures: int = 0
    last_reason: str = ""
    ejected_until: float | None = None


class PassiveDetector:
    """Counts consecutive live-traffic failures per server and ejects/readmits them."""

    def __init__(self, servers: tuple[ServerView, ...], max_fails: int, fail_timeout: float):
        self._servers = {s.key: s for s in servers}
        self._trackers = {s.key: _Tracker() for s in servers}
        self._max_fails = max_fails
        self._fail_timeout = fail_timeout

    @property
    def servers(self) -> tuple[ServerView, ...]:
        return tuple(self._servers.values())

    def failure(self, key: str, reason: str, now: float) -> Transition | None:
        """Record one failure; return the DOWN transition when it crosses max_fails."""
        tracker = self._trackers.get(key)
        if tracker is None or self._max_fails <= 0:
            return None
        tracker.consecutive_failures += 1
        tracker.last_reason = reason
        server = self._servers[key]
        if server.state is not ServerState.UP or tracker.consecutive_failures < self._max_fails:
            return None
        tracker.ejected_until = now + self._fail_timeout
        text = (
            f"server {key} DOWN: {tracker.consecutive_failures} consecutive failures on live "
            f"traffic (last: {reason}); retrying it in {self._fail_timeout:g}s"
        )
        return self._set_state(key, ServerState.DOWN, text)

    def success(self, key: str) -> None:
        """Record a success: the failure streak is over."""
        tracker = self._trackers.get(key)
        if tracker is not None and tracker.consecutive_failures:
            tracker.consecutive_failures = 0

    def tick(self, now: float) -> list[Transition]:
        """Readmit servers whose fail_timeout has elapsed."""
        changes: list[Transition] = []
        for key, tracker in self._trackers.items():
            if tracker.ejected_until is not None and now >= tracker.ejected_until:
                tracker.ejected_until = None
                tracker.consecutive_failures = 0
                text = (
                    f"server {key} UP: fail_timeout {self._fail_timeout:g}s elapsed since it was "
                    f"marked down (last failure: {tracker.last_reason}); sending traffic again"
                )
                changes.append(self._set_state(key, ServerState.UP, text))
        return changes

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do, or None."""
        deadlines = [t.ejected_until for t in self._trackers.values() if t.ejected_until]
        return min(deadlines) if deadlines else None

    def _set_state(self, key: str, state: ServerState, reason: str) -> Transition:
        old = self._servers[key]
        self._servers[key] = replace(old, state=state)
        return Transition(self._servers[key], old.state, state, reason)
