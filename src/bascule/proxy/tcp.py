"""L4 TCP proxy: accept, pick a server, connect, forward bytes both ways.

Backpressure: when one side's write buffer passes its high-water mark the
transport calls `pause_writing`, and we stop reading from the other side
until `resume_writing`. Half-close: an EOF from one side is passed on as
`write_eof` to the other; the session ends when both directions are done.
A connect failure is retried on another server (never the one that just
failed) up to the backend's `retries`. A connect that fails for want of a
resource of the balancer's own (no file descriptor, no source port) closes the
client's connection without blaming or retrying any server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from bascule.balance.base import PickContext
from bascule.errors import LocalResourceError, is_local_resource_error
from bascule.model import ServerView
from bascule.proxy.connect import ConnectError, open_connection
from bascule.proxy.timers import LazyTimer, now

if TYPE_CHECKING:
    from bascule.proxy.listener import FrontendRuntime

log = logging.getLogger("bascule.tcp")


class _ServerSide:  # an asyncio protocol; see proxy/connect.py for why no base class
    """The upstream half of a TCP session."""

    def __init__(self, session: TcpSession) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.session.from_server(data)

    def eof_received(self) -> bool:
        self.session.server_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.server_lost(exc)

    def pause_writing(self) -> None:
        self.session.pause_client()

    def resume_writing(self) -> None:
        self.session.resume_client()


class TcpSession:  # an asyncio protocol, compiled like the L7 ones (proxy/connect.py)
    """One client connection on a TCP frontend and its server connection."""

    def __init__(self, frontend: FrontendRuntime) -> None:
        self.frontend = frontend
        self.loop = frontend.loop
        self.client: asyncio.Transport | None = None
        self.upstream: _ServerSide | None = None
        self.server: ServerView | None = None
        self.pending: list[bytes] = []
        self.client_eof = False
        self.server_eof_seen = False
        self.closed = False
        self.timer = LazyTimer(self.loop, self._idle_expired)
        self.idle = frontend.tcp_idle_timeout

    # -- client side ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = cast(asyncio.Transport, transport)
        self.client = client
        self.frontend.connection_opened(self)
        # Read nothing until the server side is connected. uvloop starts reading
        # right after connection_made returns, so pause on the next loop turn too.
        client.pause_reading()
        self.loop.call_soon(self._pause_until_connected)
        self.timer.set_in(self.idle)
        self._start()

    def _pause_until_connected(self) -> None:
        if self.upstream is None and self.client is not None and not self.closed:
            self.client.pause_reading()

    def _start(self) -> None:
        if self.closed or self.client is None:
            return
        self.frontend.connect_soon(self._connect())

    def data_received(self, data: bytes) -> None:
        self.timer.deadline = now() + self.idle
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.pending.append(data)
            self._pause_until_connected()

    def eof_received(self) -> bool:
        self.client_eof = True
        upstream = self.upstream
        transport = upstream.transport if upstream is not None else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        self._close_if_done()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # -- server side callbacks -----------------------------------------------

    def from_server(self, data: bytes) -> None:
        self.timer.deadline = now() + self.idle
        if self.client is not None:
            self.client.write(data)

    def server_eof(self) -> None:
        self.server_eof_seen = True
        if self.client is not None and self.client.can_write_eof():
            self.client.write_eof()
        self._close_if_done()

    def server_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.server is not None and not self.closed:
            if is_local_resource_error(exc):  # e.g. ENOBUFS: ours, not the server's
                self.frontend.local_failure(LocalResourceError(exc.errno or 0), "closed")
            else:
                self.frontend.report_failure(self.server, f"connection error: {exc}")
        self.close()

    def pause_client(self) -> None:
        if self.client is not None:
            self.client.pause_reading()

    def resume_client(self) -> None:
        if self.client is not None and not self.client_eof:
            self.client.resume_reading()

    # -- lifecycle -------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            await self._open()
        except Exception:  # a bug of ours, not the server's: the client is not left waiting
            log.exception("tcp %s: unexpected error connecting to a server", self.frontend.name)
            self.close()

    async def _open(self) -> None:
        backend = self.frontend.default_backend
        peer = self.client.get_extra_info("peername") if self.client else None
        ctx = PickContext(client_ip=peer[0] if peer else None)
        avoid: frozenset[str] = frozenset()
        for _attempt in range(backend.retries + 1):
            server = backend.pick(ctx, avoid)
            if server is None:
                break
            backend.acquire(server.key)
            try:
                _transport, side = await open_connection(
                    self.loop, lambda: _ServerSide(self), server, backend.connect_timeout
                )
            except LocalResourceError as error:
                backend.release(server.key)
                self.frontend.local_failure(error, "client connection closed")
                self.close()
                return
            except ConnectError as failure:
                backend.release(server.key)
                backend.failure(server, failure.reason)
                log.info("tcp %s: %s, trying another server", self.frontend.name, failure)
                avoid = avoid | {server.key}
                continue
            except Exception:
                backend.release(server.key)  # not yet the session's to release on close
                raise
            if self.closed:
                backend.release(server.key)
                if side.transport is not None:
                    side.transport.close()
                return
            self._connected(server, side)
            return
        log.warning("tcp %s: no server available for backend %s", self.frontend.name, backend.name)
        self.close()

    def _connected(self, server: ServerView, side: _ServerSide) -> None:
        self.server = server
        self.upstream = side
        self.frontend.default_backend.track(server, self)
        self.frontend.default_backend.success(server)
        assert side.transport is not None
        for chunk in self.pending:
            side.transport.write(chunk)
        self.pending.clear()
        if self.client_eof and side.transport.can_write_eof():
            side.transport.write_eof()
        if self.client is not None and not self.client_eof:
            self.client.resume_reading()

    def _close_if_done(self) -> None:
        if self.client_eof and self.server_eof_seen:
            self.close()

    def _idle_expired(self) -> None:
        log.debug("tcp %s: idle timeout, closing", self.frontend.name)
        self.close()

    def shutdown(self) -> None:
        """Graceful stop: a TCP session has no request boundary, so it runs until grace ends."""

    def retire(self) -> None:
        """Reload: as a graceful stop, the session runs on until grace ends."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        if self.client is not None:
            self.client.close()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()
        if self.server is not None:
            self.frontend.default_backend.untrack(self.server, self)
            self.frontend.default_backend.release(self.server.key)
            self.server = None
        self.frontend.connection_closed(self)

    def abort(self) -> None:
        if self.client is not None:
            self.client.abort()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.abort()
        self.close()
