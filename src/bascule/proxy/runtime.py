"""What the data plane holds per backend: the current balancer and live loads.

The control plane calls `install(snapshot)` to publish a new immutable
snapshot; the data plane only calls `pick`, `acquire`/`release` and reports
outcomes. Loads (in-flight connections or requests per server) are kept
here, not in snapshots, because they change on every request.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from bascule.balance.base import PickContext
from bascule.balance.registry import reads_context
from bascule.balance.tiers import BackendBalancer
from bascule.model import BackendSnapshot, ServerView

if TYPE_CHECKING:
    from bascule.config import BackendConfig


class OutcomeSink(Protocol):
    """Where the data plane reports what happened on live traffic."""

    def failure(self, server: ServerView, reason: str) -> None: ...

    def success(self, server: ServerView) -> None: ...

    def response_status(self, server: ServerView, status: int) -> None: ...


class Abortable(Protocol):
    def abort(self) -> None: ...


class BackendRuntime:
    """The data plane's view of one backend."""

    __slots__ = (
        "_failing",
        "_rng",
        "algorithm",
        "balancer",
        "config",
        "connect_timeout",
        "hash_name",
        "hash_source",
        "loads",
        "name",
        "needs_context",
        "observe_status",
        "outcomes",
        "retries",
        "server_timeout",
        "sessions",
        "snapshot",
    )

    def __init__(
        self,
        config: BackendConfig,
        snapshot: BackendSnapshot,
        outcomes: OutcomeSink,
        rng: random.Random | None = None,
    ) -> None:
        self.name = config.name
        self.config = config  # for the control plane; the data path reads the values below
        self.outcomes = outcomes
        # What the data path needs of the config, as plain values read once: it never
        # reads a config model (a Python object: a chain of attribute lookups, even
        # compiled) per request or connection.
        self.algorithm = config.algorithm
        self.retries = config.retries
        self.connect_timeout = config.timeouts.connect
        self.server_timeout = config.timeouts.server
        hash_key = config.hash_key
        # What `hash` hashes: "uri", "header" or "cookie" (named `hash_name`, lower
        # case); "" when the algorithm is not `hash`.
        self.hash_source = hash_key.source if hash_key is not None else ""
        self.hash_name = (hash_key.name or "").lower().encode() if hash_key is not None else b""
        self.loads: dict[str, int] = {}
        # Only hashing algorithms read the pick context; others get a shared empty one.
        self.needs_context = reads_context(self.algorithm)
        # Response statuses are only reported when consecutive-5xx ejection is on.
        self.observe_status = config.passive.consecutive_5xx > 0
        # Connections per server, kept only when on_down: shutdown_sessions needs them.
        self.sessions: dict[str, set[Abortable]] | None = (
            {} if config.on_down == "shutdown_sessions" else None
        )
        self._rng = rng or random.Random()
        # Servers with a failure reported and no success since: only their successes
        # reach `outcomes` (a success ends a streak; any other one changes nothing).
        self._failing: set[str] = set()
        self.snapshot = snapshot
        self.balancer = BackendBalancer(snapshot, self.algorithm, self.loads, self._rng)

    def install(self, snapshot: BackendSnapshot) -> None:
        """Publish a new snapshot: later picks see it, in-flight work is untouched."""
        self.snapshot = snapshot
        self.balancer = BackendBalancer(snapshot, self.algorithm, self.loads, self._rng)

    def pick(self, ctx: PickContext, avoid: frozenset[str]) -> ServerView | None:
        """A server for a new request or connection, or None (see BackendBalancer.pick).
        Compiled, this and the balancer's method are direct calls (a bound method kept
        in an attribute would be a generic Python call)."""
        return self.balancer.pick(ctx, avoid)

    def acquire(self, key: str) -> None:
        """One more request or connection in flight on server `key` (ServerView.key)."""
        self.loads[key] = self.loads.get(key, 0) + 1

    def release(self, key: str) -> None:
        self.loads[key] = self.loads.get(key, 1) - 1

    def failure(self, server: ServerView, reason: str) -> None:
        """Report a connect error, reset or timeout on live traffic."""
        self._failing.add(server.key)
        self.outcomes.failure(server, reason)

    def success(self, server: ServerView) -> None:
        """Report a completed exchange or session."""
        failing = self._failing
        if failing and server.key in failing:
            failing.discard(server.key)
            self.outcomes.success(server)

    def track(self, server: ServerView, conn: Abortable) -> None:
        if self.sessions is not None:
            self.sessions.setdefault(server.key, set()).add(conn)

    def untrack(self, server: ServerView, conn: Abortable) -> None:
        if self.sessions is not None:
            conns = self.sessions.get(server.key)
            if conns:
                conns.discard(conn)

    def shutdown_sessions(self, key: str) -> int:
        """Abort every tracked connection to a server (on_down: shutdown_sessions)."""
        if self.sessions is None:
            return 0
        conns = self.sessions.pop(key, set())
        for conn in list(conns):
            conn.abort()
        return len(conns)
