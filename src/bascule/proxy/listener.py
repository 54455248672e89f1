"""A frontend at run time: its listening socket, connections, routing and limits."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from bascule.errors import StartupError
from bascule.model import ServerView
from bascule.proxy.http_policy import ForwardingPolicy, HeadLimits, RequestHead
from bascule.proxy.pool import UpstreamPool
from bascule.proxy.runtime import BackendRuntime

if TYPE_CHECKING:
    from bascule.config import FrontendConfig

log = logging.getLogger("bascule.listener")


class Connection(Protocol):
    """What a frontend needs from each of its client connections."""

    def shutdown(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class FrontendRuntime:
    """Owns one listening socket and every connection accepted on it."""

    def __init__(
        self,
        config: FrontendConfig,
        backends: dict[str, BackendRuntime],
        loop: asyncio.AbstractEventLoop,
        pool: UpstreamPool,
        instance_id: bytes | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.loop = loop
        self.pool = pool
        self.backends = backends
        self.default_backend = backends[config.default_backend]
        self.routes = tuple((r, backends[r.backend]) for r in config.routes)
        # Without routing rules every request goes to one backend: the data path reads
        # it here and skips calling `route` (a Python call, costly per request).
        self.only_backend = None if self.routes else self.default_backend
        self.timeouts = config.timeouts
        self.limits = HeadLimits(
            max_header_bytes=config.http.max_header_bytes,
            max_headers=config.http.max_headers,
            max_request_line=config.http.max_request_line,
            max_request_body=config.http.max_request_body,
        )
        # This frontend's id in X-Bascule-Loop (loop detection): random, so it tells a
        # server nothing, and one per frontend, so that a frontend may forward to another
        # while a request that comes back to the same frontend is a loop.
        if instance_id is None:
            instance_id = secrets.token_hex(8).encode("ascii")
        self.forwarding = ForwardingPolicy(
            config.trusted_networks, config.forwarded == "replace", instance_id
        )
        self.tcp_idle_timeout = max(
            config.timeouts.client, self.default_backend.config.timeouts.server
        )
        self.connections: set[Connection] = set()
        self.active = 0  # admitted connections (served now)
        self._waiting: deque[tuple[Connection, Callable[[], None]]] = deque()
        self._server: asyncio.base_events.Server | None = None
        self.errors_by_status: dict[int, int] = {}
        self.stopping = False

    async def start(self) -> None:
        from bascule.proxy.http import HttpClientConnection
        from bascule.proxy.tcp import TcpSession

        factory: Callable[[], object]  # protocol objects (see proxy/connect.py)
        if self.config.mode == "http":
            factory = lambda: HttpClientConnection(self)  # noqa: E731
        else:
            factory = lambda: TcpSession(self)  # noqa: E731
        bind = self.config.bind
        family = socket.AF_INET6 if bind.family == 6 else socket.AF_INET
        try:
            self._server = await self.loop.create_server(
                cast(Callable[[], asyncio.Protocol], factory),
                bind.host,
                bind.port,
                family=family,
                reuse_address=True,
                backlog=4096,
            )
        except OSError as exc:
            raise StartupError(
                f"frontend {self.name}: cannot listen on {bind}: {exc.strerror or exc} "
                "(is another process using that port, or the address not on this host?)"
            ) from None
        log.info("frontend %s listening on %s (%s)", self.name, bind, self.config.mode)

    # -- routing -------------------------------------------------------------------

    def route(self, head: RequestHead) -> BackendRuntime:
        if not self.routes:
            return self.default_backend
        host = head.host.decode("latin-1")
        path = _path_of(head.target)
        for rule, backend in self.routes:
            if rule.matches(host, path):
                return backend
        return self.default_backend

    # -- connection accounting -------------------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        if self.stopping:
            conn.shutdown()

    def admit(self, conn: Connection, start: Callable[[], None]) -> None:
        """Serve `conn` now if under max_connections, else when a slot frees.

        Like HAProxy's `maxconn`, excess connections wait (here: accepted but
        not read) instead of being refused.
        """
        if self.active < self.config.max_connections:
            self.active += 1
            start()
        else:
            self._waiting.append((conn, start))

    def connection_closed(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        waiting = [w for w in self._waiting if w[0] is conn]
        if waiting:
            self._waiting.remove(waiting[0])
            return
        self.active -= 1
        while self._waiting and self.active < self.config.max_connections:
            _conn, start = self._waiting.popleft()
            self.active += 1
            start()

    def report_failure(self, server: ServerView, reason: str) -> None:
        self.default_backend.failure(server, reason)

    def count_error(self, status: int) -> None:
        self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1

    # -- stopping ----------------------------------------------------------------------

    def stop_accepting(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


def _path_of(target: bytes) -> str:
    """The path of a request target (origin-form or absolute-form), without query."""
    if target.startswith(b"/"):
        path = target
    elif b"://" in target:
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        path = rest[slash:] if slash >= 0 else b"/"
    else:
        path = b"/"
    return path.split(b"?", 1)[0].decode("latin-1")
