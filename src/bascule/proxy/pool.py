"""Idle keep-alive connections to servers, reused across requests.

LIFO per server: the most recently used connection is the least likely to
have been closed by the server's own keep-alive timeout. A connection that
receives anything (or EOF) while idle is dropped: a server may close idle
connections at any time, and unexpected bytes mean it is out of sync.
"""

from __future__ import annotations

from typing import Protocol


class Pooled(Protocol):
    idle_since: float

    def close(self) -> None: ...


class UpstreamPool:
    """Idle connections by server key, at most `max_idle_per_server` each."""

    def __init__(self, max_idle_per_server: int = 64, idle_timeout: float = 30.0) -> None:
        self.max_idle_per_server = max_idle_per_server
        self.idle_timeout = idle_timeout
        self._idle: dict[str, list[Pooled]] = {}

    def get(self, server_key: str, now: float, max_age: float | None = None) -> Pooled | None:
        """Most recently idled connection for the server, or None.

        `max_age` limits how long the connection may have been idle: a
        request that must not be replayed only takes a fresh-enough one.
        """
        idle = self._idle.get(server_key)
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self.idle_timeout and (
                max_age is None or now - conn.idle_since <= max_age
            ):
                return conn
            conn.close()
        return None

    def put(self, server_key: str, conn: Pooled, now: float) -> bool:
        """Keep `conn` for reuse; False (caller closes it) when the pool is full."""
        idle = self._idle.setdefault(server_key, [])
        if len(idle) >= self.max_idle_per_server:
            return False
        conn.idle_since = now
        idle.append(conn)
        return True

    def discard(self, server_key: str, conn: Pooled) -> None:
        idle = self._idle.get(server_key)
        if idle and conn in idle:
            idle.remove(conn)

    def sweep(self, now: float) -> int:
        """Close connections idle longer than idle_timeout; returns how many."""
        closed = 0
        for idle in self._idle.values():
            stale = [c for c in idle if now - c.idle_since > self.idle_timeout]
            for conn in stale:
                idle.remove(conn)
                conn.close()
            closed += len(stale)
        return closed

    def close_all(self) -> None:
        lists = list(self._idle.values())
        self._idle.clear()  # close() calls discard(), which must not edit a list we iterate
        for idle in lists:
            for conn in idle:
                conn.close()

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())
