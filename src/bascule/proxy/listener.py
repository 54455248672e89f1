"""A frontend at run time: its listening socket, connections, routing and limits.

Accepting is done here rather than by the event loop's server (`loop.create_server`),
for two things uvloop's server cannot do:

* Stop accepting at `max_connections`, like HAProxy's `maxconn`: the listening socket
  stays open and leaves the loop's watch, so new clients wait in the kernel's accept
  queue (the backlog) holding no file descriptor of ours, and are accepted as
  connections end. uvloop's server can only be closed, which refuses them.
* See accept errors. When accept() fails for want of a file descriptor (EMFILE,
  ENFILE), libuv accepts and closes the waiting connections with a spare descriptor
  and tells nobody; if it has no spare, uvloop closes the listening socket. Here the
  error is counted and logged (throttled), and accepting pauses for 100 ms with the
  connections left in the backlog, as HAProxy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from bascule.config.addresses import host_matches, request_host_name
from bascule.errors import LOCAL_RESOURCE_ERRNOS, LocalResourceError, StartupError
from bascule.logthrottle import ThrottledLog
from bascule.model import ServerView
from bascule.proxy.http_policy import ForwardingPolicy, HeadLimits, RequestHead
from bascule.proxy.pool import UpstreamPool
from bascule.proxy.runtime import BackendRuntime
from bascule.proxy.timers import now

if TYPE_CHECKING:
    from bascule.config import FrontendConfig
    from bascule.config.models import BindAddress

log = logging.getLogger("bascule.listener")

BACKLOG: Final = 4096  # the kernel caps it at net.core.somaxconn
# Connections accepted per wake-up at most, so one busy listener cannot hold the loop.
ACCEPT_BATCH: Final = 64
# After accept() failed for want of a resource, wait this long before trying again
# (HAProxy's pause too): the connections wait in the backlog meanwhile.
ACCEPT_RETRY_DELAY: Final = 0.1


class Connection(Protocol):
    """What a frontend needs from each of its client connections."""

    def shutdown(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def retire(self) -> None: ...


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
        # The routing rules as plain values, in order: (host pattern or None, path prefix
        # or None, backend). `route` reads these per request, not the RouteConfig models.
        self.routes: tuple[tuple[str | None, str | None, BackendRuntime], ...] = tuple(
            (r.host, r.path_prefix, backends[r.backend]) for r in config.routes
        )
        self._routes_by_host = any(host is not None for host, _prefix, _b in self.routes)
        # Without routing rules every request goes to one backend: the data path reads
        # it here and skips calling `route` (a Python call, costly per request).
        self.only_backend = None if self.routes else self.default_backend
        self.timeouts = config.timeouts
        # Read by every new client connection, so plain values rather than the model's.
        self.client_timeout = config.timeouts.client
        self.request_timeout = config.timeouts.http_request
        self.keep_alive_timeout = config.timeouts.http_keep_alive
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
        self.tcp_idle_timeout = max(config.timeouts.client, self.default_backend.server_timeout)
        # Client connections served at once; 0 = no limit. The configured value, unless
        # the file descriptor limit cannot carry it (see `App` and `bascule.fdbudget`).
        self.max_connections = config.max_connections
        self.connections: set[Connection] = set()
        self.active = 0  # accepted connections not yet closed
        self._listener: socket.socket | None = None
        self._accepting = False  # the listening socket is watched by the loop
        self._retry: asyncio.TimerHandle | None = None
        self.errors_by_status: dict[int, int] = {}
        # The balancer's own shortages (by errno name, "EMFILE"): requests answered 503
        # and TCP connections closed for them, and accept() failures. For the admin
        # API and metrics; the log has them throttled.
        self.local_errors: dict[str, int] = {}
        self.accept_errors: dict[str, int] = {}
        self._local_log = ThrottledLog(log, logging.ERROR)
        self._accept_log = ThrottledLog(log, logging.ERROR)
        self.stopping = False
        self.retiring = False  # replaced by a reload: its connections finish, then close
        self._factory: Callable[[], object] | None = None
        # Connects to servers in progress. The loop holds only a weak reference to a
        # task: without this one, a connect could be collected mid-flight.
        self.connecting: set[asyncio.Task[None]] = set()

    async def start(self, listener: socket.socket | None = None) -> None:
        """Listen on the configured address, or serve `listener`: the open socket of the
        frontend this one replaces on reload (same address), so no client is refused."""
        from bascule.proxy.http import HttpClientConnection
        from bascule.proxy.tcp import TcpSession

        if self.config.mode == "http":
            self._factory = lambda: HttpClientConnection(self)
        else:
            self._factory = lambda: TcpSession(self)
        bind = self.config.bind
        taken_over = listener is not None
        self._listener = listener if listener is not None else listening_socket(self.name, bind)
        self._watch()
        if not taken_over:
            log.info("frontend %s listening on %s (%s)", self.name, bind, self.config.mode)

    def hand_over(self) -> socket.socket | None:
        """Reload: stop accepting and give the listening socket, still open with its
        backlog, to the frontend that replaces this one. In-flight connections finish on
        this frontend's objects; each answers at most one more request."""
        listener = self._listener
        self._unwatch()
        self._listener = None
        self.retire()
        return listener

    # -- accepting ---------------------------------------------------------------------

    def _watch(self) -> None:
        if not self._accepting and self._listener is not None and not self.stopping:
            self._accepting = True
            self.loop.add_reader(self._listener.fileno(), self._accept_ready)

    def _unwatch(self) -> None:
        if self._accepting and self._listener is not None:
            self._accepting = False
            self.loop.remove_reader(self._listener.fileno())

    def _full(self) -> bool:
        return 0 < self.max_connections <= self.active

    def _accept_ready(self) -> None:
        listener = self._listener
        assert listener is not None
        for _ in range(ACCEPT_BATCH):
            if self._full():
                self._unwatch()  # the backlog holds the next clients until one leaves
                return
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting in the backlog
            except OSError as exc:
                self._accept_failed(exc)
                return
            self._serve(sock)

    def _accept_failed(self, exc: OSError) -> None:
        code = exc.errno or 0
        name = errno.errorcode.get(code, str(code))
        self.accept_errors[name] = self.accept_errors.get(name, 0) + 1
        if code in LOCAL_RESOURCE_ERRNOS:
            error = LocalResourceError(code)
            what = f"{error.reason}; {error.hint}"
        else:
            what = exc.strerror or str(exc)
        self._accept_log.log(
            now(),
            f"frontend {self.name}: cannot accept connections: {what} "
            f"({self.active} open, max_connections {self.max_connections or 'unlimited'}); "
            f"new clients wait in the backlog, next try in {ACCEPT_RETRY_DELAY * 1000:g} ms",
        )
        self._unwatch()
        if self._retry is None:
            self._retry = self.loop.call_later(ACCEPT_RETRY_DELAY, self._retry_accepting)

    def _retry_accepting(self) -> None:
        self._retry = None
        if not self._full():
            self._watch()

    def _serve(self, sock: socket.socket) -> None:
        """Give an accepted socket a transport and one of our protocol objects."""
        assert self._factory is not None
        self.active += 1
        try:
            _drive(
                self.loop.connect_accepted_socket(
                    cast(Callable[[], asyncio.Protocol], self._factory), sock
                )
            )
        except Exception:
            log.exception("frontend %s: cannot set up an accepted connection", self.name)
            sock.close()
            self._slot_freed()

    def _slot_freed(self) -> None:
        self.active -= 1
        if self._retry is None and not self._full():
            self._watch()

    # -- routing -------------------------------------------------------------------

    def route(self, head: RequestHead) -> BackendRuntime:
        """The backend of the first rule that takes this request, else the default one.
        The rules are `RouteConfig.matches`'s, on values read once (see `routes`)."""
        routes = self.routes
        if not routes:
            return self.default_backend
        host = request_host_name(head.host.decode("latin-1")) if self._routes_by_host else ""
        path = _path_of(head.target)
        for pattern, prefix, backend in routes:
            if pattern is not None and not host_matches(pattern, host):
                continue
            if prefix is None or path.startswith(prefix):
                return backend
        return self.default_backend

    # -- connects to servers -----------------------------------------------------------

    def connect_soon(self, connect: Coroutine[Any, Any, None]) -> None:
        """Run `connect`, a client connection's connect to a server, as a task held
        until it ends. Only new server connections take this path, not every request."""
        task = self.loop.create_task(connect)
        self.connecting.add(task)
        task.add_done_callback(self._connect_ended)

    def _connect_ended(self, task: asyncio.Task[None]) -> None:
        self.connecting.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # the connect handles its errors: this is a bug of ours
            log.error(
                "frontend %s: connect to a server failed unexpectedly", self.name, exc_info=error
            )

    # -- connection accounting -------------------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        if self.stopping:
            if self.retiring:
                conn.retire()
            else:
                conn.shutdown()

    def connection_closed(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self._slot_freed()

    def report_failure(self, server: ServerView, reason: str) -> None:
        self.default_backend.failure(server, reason)

    def count_error(self, status: int) -> None:
        self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1

    def local_failure(self, error: LocalResourceError, outcome: str) -> None:
        """A request or connection could not be served for a shortage of the balancer's
        own (`outcome`: what its client got). Counted, and logged at most once a second."""
        name = error.errno_name
        self.local_errors[name] = self.local_errors.get(name, 0) + 1
        freed = ""
        if error.errno in (errno.EMFILE, errno.ENFILE):
            # Idle connections to servers hold descriptors that the next connects need
            # (HAProxy too kills idle server connections when short of them).
            idle = self.pool.idle_count()
            if idle:
                self.pool.close_all()
                freed = f", closed {idle} idle server connection{'s' if idle != 1 else ''}"
        self._local_log.log(
            now(),
            f"frontend {self.name}: {error.reason}, {outcome}{freed}; not a server failure "
            f"({self.active} client connections open, max_connections "
            f"{self.max_connections or 'unlimited'}; {error.hint})",
        )

    # -- stopping ----------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Stop: close the listening socket; each connection ends after its exchange."""
        self._close_listener(retiring=False)
        for conn in list(self.connections):
            conn.shutdown()

    def retire(self) -> None:
        """Reload: no new connections here; the open ones finish (see `hand_over`)."""
        self._close_listener(retiring=True)
        for conn in list(self.connections):
            conn.retire()

    def _close_listener(self, retiring: bool) -> None:
        self.stopping = True
        self.retiring = retiring
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._listener is not None:  # not handed over: its address closes now
            self._listener.close()
            self._listener = None

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


def listening_socket(frontend: str, bind: BindAddress) -> socket.socket:
    """A non-blocking socket listening on `bind`, or StartupError saying why not."""
    ipv6 = bind.family == 6
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ipv6:  # as asyncio and uvloop do: "[::]" is IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((bind.host, bind.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"frontend {frontend}: cannot listen on {bind}: "
            f"{exc.strerror or exc} (is another process using that port, or the address "
            "not on this host?)"
        ) from None
    return sock


def _drive(coroutine: Coroutine[Any, Any, object]) -> None:
    """Run `loop.connect_accepted_socket(...)` without a task.

    Its work is done before its one await, which only waits for `connection_made`
    to have been called; a task per accepted connection would cost more than the
    rest of the accept. The coroutine is resumed when the future it waits on is done.
    """
    try:
        waiting = coroutine.send(None)
    except StopIteration:
        return
    if not isinstance(waiting, asyncio.Future):  # asyncio and uvloop await a future
        raise RuntimeError(f"connect_accepted_socket waits on {waiting!r}, not a future")
    waiting.add_done_callback(lambda _done: _finish(coroutine))


def _finish(coroutine: Coroutine[Any, Any, object]) -> None:
    # A connection closed before connection_made raises here: nothing is left to do.
    with contextlib.suppress(StopIteration, Exception):
        coroutine.send(None)


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
