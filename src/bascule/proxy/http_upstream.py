"""The server side of the L7 proxy: one keep-alive HTTP/1.1 connection to a server.

It parses responses with httptools and hands each event to the exchange it
is currently serving. Between exchanges it sits in the pool; anything that
arrives while idle (bytes or EOF) means the connection cannot be reused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httptools

from bascule.errors import LocalResourceError, UpstreamProtocolError, is_local_resource_error
from bascule.model import ServerView
from bascule.proxy.heads import HeadReader, status_code
from bascule.proxy.http_policy import HeadLimits, ResponseMemo, check_trailers
from bascule.proxy.pool import UpstreamPool
from bascule.proxy.timers import LazyTimer, now

if TYPE_CHECKING:
    from bascule.proxy.http import Exchange
    from bascule.proxy.runtime import BackendRuntime

log = logging.getLogger("bascule.http")


class UpstreamConnection:  # an asyncio protocol; see proxy/connect.py for why no base class
    """One connection to a server, serving one exchange at a time."""

    __slots__ = (
        "_done",
        "_head_budget",
        "_reset_parser",
        "backend",
        "closed",
        "exchange",
        "heads",
        "key",
        "limits",
        "loop",
        "memo",
        "parser",
        "paused",
        "pool",
        "read_at",
        "reused",
        "server",
        "server_timeout",
        "timer",
        "transport",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: ServerView,
        pool: UpstreamPool,
        limits: HeadLimits,
        server_timeout: float,
    ) -> None:
        self.loop = loop
        self.server = server
        self.key = server.key  # read once: ServerView is a Python object
        self.pool = pool
        self.limits = limits
        self.server_timeout = server_timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.memo = ResponseMemo()  # this server's last response head and its verdict
        self.exchange: Exchange | None = None
        self.backend: BackendRuntime | None = None  # set when on_down needs tracking
        self.closed = False
        self.reused = False
        self.paused = False
        self.heads = HeadReader()  # where each response head is in what the server sent
        self._head_budget = limits.max_header_bytes + 4096
        self._reset_parser = False
        self._done: Exchange | None = None  # response complete, finished after the read
        # When the last read arrived (`now()` time). A response ends in a read, so this is
        # also when it ended: the time its exchange and the pool need, without a clock call.
        self.read_at = 0.0
        self.timer = LazyTimer(loop, self._timed_out)

    # -- used by the exchange ----------------------------------------------------

    def attach(self, exchange: Exchange, request_head: bytes, at: float) -> None:
        """Serve `exchange`, starting with its request head, sent at `at` (`now()`)."""
        self.exchange = exchange
        self.heads.reset()  # the response starts with the next byte the server sends
        assert self.transport is not None
        self.transport.write(request_head)
        self.timer.set(at + self.server_timeout)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.timer.deadline = now() + self.server_timeout

    def release(self, reusable: bool) -> None:
        """The exchange is over: back to the pool when reusable, else closed."""
        self.exchange = None
        self.timer.set(None)
        if self._reset_parser:
            self.parser = httptools.HttpResponseParser(self)
            self._reset_parser = False
        if self.paused:
            self.resume_reading()  # an idle pooled connection must notice the server closing
        if reusable and not self.closed and self.pool.put(self.key, self, self.read_at):
            self.reused = True
            return
        self.close()

    def pause_reading(self) -> None:
        """The client cannot take more of the response yet (backpressure). The server is
        not late while we do not read it, so its timeout is suspended meanwhile."""
        if self.transport is not None and not self.closed:
            self.paused = True
            self.timer.set(None)
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            if self.exchange is not None:
                self.timer.set(now() + self.server_timeout)
            self.transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.pool.discard(self.key, self)
        if self.backend is not None:
            self.backend.untrack(self.server, self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection now (on_down: shutdown_sessions); its exchange, if any,
        sees the loss like any other and retries or fails."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def skip_body(self) -> None:
        """The response to a HEAD request has no body whatever its headers say;
        llhttp cannot be told so through httptools, so use a new parser next time."""
        self._reset_parser = True

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes while idle: the server is out of sync
            return
        at = now()
        self.read_at = at
        self.timer.deadline = at + self.server_timeout
        client = exchange.conn
        client.cork()
        heads = self.heads
        heads.read(data)
        try:
            self.parser.feed_data(data)
            heads.end_of_read()
            if heads.carried > self._head_budget:  # a head or trailers that never end
                raise UpstreamProtocolError("response header or trailer section too large")
        except UpstreamProtocolError as exc:
            self._failed_read(exchange, exc.reason)
        except httptools.HttpParserError as exc:
            # An error raised in our callbacks arrives wrapped, as __context__.
            cause = exc.__context__
            if isinstance(cause, UpstreamProtocolError):
                self._failed_read(exchange, cause.reason)
            elif cause is not None and not isinstance(cause, httptools.HttpParserError):
                log.error("internal error handling a response", exc_info=cause)
                self._failed_read(exchange, "internal error in the proxy (see its log)")
            else:
                self._failed_read(exchange, f"malformed response: {parser_reason(exc)}")
        else:
            done = self._done
            if done is not None:
                # Completed only now that the whole read is parsed: the next pipelined
                # request may reuse this connection at once.
                self._done = None
                done.response_complete(self)
        finally:
            client.uncork()

    def finish_after_read(self, exchange: Exchange) -> None:
        """The exchange's response is complete; finish it once the current read is parsed."""
        self._done = exchange

    def _failed_read(self, exchange: Exchange, reason: str) -> None:
        done = self._done
        if done is not None:
            # The response was complete; whatever followed it (junk, a body on a
            # 204/304, a second response) means this connection is out of sync.
            self._done = None
            log.warning("%s: %s after a complete response; closing", self.key, reason)
            done.response_complete(self, reusable=False)
            self.close()
            return
        self._fail(exchange, reason)

    def eof_received(self) -> bool:
        exchange = self.exchange
        if exchange is not None:
            exchange.upstream_eof(self)  # completes a close-delimited response
        if self.exchange is exchange and exchange is not None:
            self.exchange = None
            self.close()
            exchange.upstream_lost(self, "server closed the connection")
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self.timer.cancel()
        self.pool.discard(self.key, self)
        if self.backend is not None:
            self.backend.untrack(self.server, self)
        exchange = self.exchange
        if exchange is not None and not was_closed:
            self.exchange = None
            if is_local_resource_error(exc):  # e.g. ENOBUFS on a write: ours, not the server's
                exchange.local_failure(LocalResourceError(exc.errno or 0))
                return
            reason = f"connection lost: {exc}" if exc else "server closed the connection"
            exchange.upstream_lost(self, reason)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.pause_reading_for_upstream()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.resume_reading_for_upstream()

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done is not None:
            raise UpstreamProtocolError("data after the response")
        self.heads.message_begun()

    # No on_status or on_header: the head is taken whole (see proxy/heads.py). Exact
    # limits are checked by the policy; `data_received` bounds memory meanwhile.

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        heads = self.heads
        head = heads.take()
        status = status_code(head)
        exchange.response_head(self, head, status)
        # An interim 1xx response has no body: the final one follows it directly. After
        # the final response nothing may follow (checked in on_message_begin); its body
        # is followed when chunked, for the trailers.
        if status < 200:
            heads.skip(0)
        else:
            response = exchange.response
            chunked = response is not None and response.chunked and exchange.framing != "none"
            heads.skip(None, chunked)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.response_body(body)

    def on_message_complete(self) -> None:
        heads = self.heads
        heads.message_done()
        exchange = self.exchange
        if exchange is not None and exchange.response is not None:  # not an interim 1xx
            trailers = heads.trailers
            if trailers:
                exchange.trailers = check_trailers(trailers, self.limits, "response")
            self._done = exchange

    # -- failures ------------------------------------------------------------------

    def _fail(self, exchange: Exchange, reason: str) -> None:
        self.exchange = None
        self.close()
        exchange.upstream_bad_response(self, reason)

    def _timed_out(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        self.close()
        exchange.upstream_timeout(self, self.server_timeout)


def parser_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:200]
