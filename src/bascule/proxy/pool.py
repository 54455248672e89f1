"""Idle keep-alive connections to servers, reused across requests.

LIFO per server: the most recently used connection is the least likely to
have been closed by the server's own keep-alive timeout. A connection that
receives anything (or EOF) while idle is dropped: a server may close idle
connections at any time, and unexpected bytes mean it is out of sync.
"""

from __future__ import annotations

from typing import Protocol


class Pooled(Protocol):
    def close(self) -> None: ...


class UpstreamPool:
    """Idle connections by server key, at most `max_idle_per_server` each."""

    def __init__(self, max_idle_per_server: int = 64, idle_timeout: float = 30.0) -> None:
        self.max_idle_per_server = max_idle_per_server
        self.idle_timeout = idle_timeout
        # (idle since, connection), most recent last. The time is kept here, not on the
        # connection: compiled, reading a tuple item is native, while an attribute of an
        # object typed by a Protocol is a generic lookup.
        self._idle: dict[str, list[tuple[float, Pooled]]] = {}

    def get(self, server_key: str, now: float, max_age: float | None = None) -> Pooled | None:
        """Most recently idled connection for the server, or None.

        `max_age` limits how long the connection may have been idle: a
        request that must not be replayed only takes a fresh-enough one.
        """
        idle = self._idle.get(server_key)
        while idle:
            since, conn = idle.pop()
            age = now - since
            if age <= self.idle_timeout and (max_age is None or age <= max_age):
                return conn
            conn.close()
        return None

    def put(self, server_key: str, conn: Pooled, now: float) -> bool:
        """Keep `conn` for reuse; False (caller closes it) when the pool is full."""
        idle = self._idle.setdefault(server_key, [])
        if len(idle) >= self.max_idle_per_server:
            return False
        idle.append((now, conn))
        return True

    def discard(self, server_key: str, conn: Pooled) -> None:
        idle = self._idle.get(server_key)
        if idle:
            for i, (_since, kept) in enumerate(idle):
                if kept is conn:
                    del idle[i]
                    return

    def sweep(self, now: float) -> int:
        """Close connections idle longer than idle_timeout; returns how many."""
        closed = 0
        for idle in self._idle.values():
            stale = [entry for entry in idle if now - entry[0] > self.idle_timeout]
            for entry in stale:
                idle.remove(entry)
                entry[1].close()
            closed += len(stale)
        return closed

    def close_server(self, server_key: str) -> None:
        """Close the idle connections to one server (a reload moved or removed it)."""
        for _since, conn in self._idle.pop(server_key, []):
            conn.close()

    def close_all(self) -> None:
        lists = list(self._idle.values())
        self._idle.clear()  # close() calls discard(), which must not edit a list we iterate
        for idle in lists:
            for _since, conn in idle:
                conn.close()

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())
