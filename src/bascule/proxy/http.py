"""L7 HTTP/1.1 reverse proxy: the client side and the per-request exchange.

`HttpClientConnection` parses requests with httptools (llhttp, strict) and
checks every head with `http_policy` before anything reaches a server.
Requests are answered in order: a pipelined request waits in `queue` (with
client reading paused) until the one before it has its full response.

`Exchange` carries one request to a server and its response back. Bodies
stream in both directions without being buffered whole; the first 64 KiB
of an idempotent request's body are kept so it can be replayed on another
server when a connection fails before any response byte arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Final, cast

import httptools

from bascule.balance.base import PickContext
from bascule.errors import ClientProtocolError, LocalResourceError, UpstreamProtocolError
from bascule.model import ServerView
from bascule.proxy.connect import ConnectError, open_connection
from bascule.proxy.heads import HeadReader
from bascule.proxy.http_policy import (
    Framing,
    RequestHead,
    RequestMemo,
    ResponseHead,
    check_trailers,
    client_response_head,
    error_response,
    ignorable_upgrade,
    server_host_header,
    with_server_host,
)
from bascule.proxy.http_upstream import UpstreamConnection, parser_reason
from bascule.proxy.timers import LazyTimer, now

if TYPE_CHECKING:
    from bascule.proxy.listener import FrontendRuntime
    from bascule.proxy.runtime import BackendRuntime

log = logging.getLogger("bascule.http")

# Final: compiled, these are constants in the code instead of a lookup in the module's
# dict on every use.
REPLAY_LIMIT: Final = 64 * 1024  # request body bytes kept for a possible retry
UNSENT_LIMIT: Final = 64 * 1024  # request body bytes buffered before pausing the client
FRESH_FOR_UNSAFE: Final = 2.0  # max idle age (s) of a pooled connection, non-replayable request

_NO_CONTEXT: Final = PickContext()
_NO_AVOID: Final[frozenset[str]] = frozenset()
# What the connection's one timer is waiting for.
_TIMER_IDLE: Final = 0
_TIMER_HEAD: Final = 1
_TIMER_BODY: Final = 2
_TIMER_NONE: Final = 3
# Why client reading is paused (a bit each; reading resumes when none is left).
_PAUSE_QUEUE: Final = 1
_PAUSE_BUFFER: Final = 2
_PAUSE_UPSTREAM: Final = 4
_PAUSE_CLOSING: Final = 16


class Exchange:
    """One request and its response."""

    __slots__ = (
        "attempts",
        "avoid",
        "backend",
        "body_bytes",
        "conn",
        "corked",
        "corked_at",
        "finished",
        "framing",
        "head",
        "head_sent",
        "head_wire",
        "http11",
        "keep_alive",
        "replayable",
        "request_done",
        "response",
        "response_started",
        "server",
        "trailers",
        "unsent",
        "unsent_bytes",
        "upstream",
        "wire",
        "wire_bytes",
    )

    def __init__(
        self, conn: HttpClientConnection, head: RequestHead, wire: bytes, backend: BackendRuntime
    ):
        self.conn = conn
        self.head = head
        self.head_wire = wire  # the request head as sent to a server (on every attempt)
        self.backend = backend
        self.server: ServerView | None = None
        self.upstream: UpstreamConnection | None = None
        self.avoid = _NO_AVOID
        self.attempts = 0
        # Body pieces waiting for a server connection. The lists are made on the first
        # piece: most requests have no body, and two lists per request cost more than
        # the checks.
        self.unsent: list[bytes] | None = None
        self.unsent_bytes = 0
        self.replayable = head.idempotent  # may be sent again to another server
        self.wire: list[bytes] | None = None  # encoded body sent so far, kept for replay
        self.wire_bytes = 0
        self.body_bytes = 0  # of a chunked body, counted against http.max_request_body
        self.request_done = not head.chunked and not head.content_length  # None or 0
        self.response: ResponseHead | None = None
        self.response_started = False
        self.head_sent = False  # the final response head was written (maybe still corked)
        # Where that head went: which cork buffer of the client connection (its number,
        # 0: none) and the index there. Until that buffer is flushed nothing of the
        # response has reached the client.
        self.corked = 0
        self.corked_at = 0
        self.framing: Framing = "length"
        self.trailers = b""  # checked response trailer lines, sent with the last chunk
        self.keep_alive = head.keep_alive
        self.http11 = head.version == "1.1"  # per request: a pipeline may mix versions
        self.finished = False

    # -- request side ---------------------------------------------------------------

    def start(self) -> None:
        """Pick a server and send the request (called when it is this request's turn)."""
        if self.conn.closed:
            return
        self.attempts += 1
        backend = self.backend
        context = self._pick_context() if backend.needs_context else _NO_CONTEXT
        server = backend.pick(context, self.avoid)
        if server is None:
            self.fail(503, f"no server available for backend {backend.name}")
            return
        self.server = server
        key = server.key
        backend.acquire(key)
        max_age = None if self.replayable else FRESH_FOR_UNSAFE
        at = now()
        pooled = self.conn.pool.get(key, at, max_age)
        if pooled is not None:
            self._send_on(cast(UpstreamConnection, pooled), at)  # the pool holds only these
        else:
            self.conn.frontend.connect_soon(self._connect(server))

    async def _connect(self, server: ServerView) -> None:
        try:
            await self._open(server)
        except Exception:  # a bug of ours, not the server's: the client still gets an answer
            log.exception(
                "%s %s: unexpected error connecting to %s",
                self.head.method.decode(),
                self.head.target[:80].decode("latin-1"),
                server.key,
            )
            self.fail(502, f"internal error connecting to {server.key}", logged=True)

    async def _open(self, server: ServerView) -> None:
        frontend = self.conn.frontend
        backend = self.backend
        try:
            _t, upstream = await open_connection(
                self.conn.loop,
                lambda: UpstreamConnection(
                    self.conn.loop, server, frontend.pool, frontend.limits, backend.server_timeout
                ),
                server,
                backend.connect_timeout,
            )
        except ConnectError as failure:
            self._retry_or_fail(failure.reason, 503, counts_against_server=True)
            return
        except LocalResourceError as error:
            self.local_failure(error)
            return
        if self.conn.closed or self.server is not server:
            upstream.close()
            self._release_server()
            return
        if self.backend.sessions is not None:
            upstream.backend = self.backend
            self.backend.track(server, upstream)
        self._send_on(upstream, now())

    def _send_on(self, upstream: UpstreamConnection, at: float) -> None:
        self.upstream = upstream
        conn = self.conn
        wire = self.head_wire
        if not self.head.host:  # HTTP/1.0 without Host: name the server (RFC 9112 3.2)
            server = upstream.server
            wire = with_server_host(wire, server_host_header(server.host, server.port).encode())
        upstream.attach(self, wire, at)
        if conn.write_paused:
            # The client is still behind on an earlier response: uvloop will not say
            # pause_writing again, so apply it to this server now.
            upstream.pause_reading()
        unsent = self.unsent
        if unsent is not None:
            for piece in unsent:
                upstream.write(piece)
            self.unsent = None
            self.unsent_bytes = 0
        conn.resume_reading(_PAUSE_BUFFER)

    def request_body(self, data: bytes) -> None:
        if not self.head.chunked:
            self._forward(data)  # its Content-Length was checked against the limit
            return
        self.body_bytes += len(data)
        if self.body_bytes > self.conn.limits.max_request_body > 0:
            self.conn.body_too_large(self.body_bytes)
            return
        self._forward(b"%x\r\n%b\r\n" % (len(data), data))

    def request_complete(self, trailers: bytes = b"") -> None:
        """The whole request body is here; `trailers`: its checked trailer field lines."""
        self.request_done = True
        if self.head.chunked:
            self._forward(b"0\r\n%b\r\n" % trailers if trailers else b"0\r\n\r\n")

    def _forward(self, piece: bytes) -> None:
        if self.replayable:
            self.wire_bytes += len(piece)
            wire = self.wire
            if self.wire_bytes > REPLAY_LIMIT:
                self.replayable = False
                self.wire = None
            elif wire is None:
                self.wire = [piece]
            else:
                wire.append(piece)
        upstream = self.upstream
        if upstream is not None:
            upstream.write(piece)
            return
        unsent = self.unsent
        if unsent is None:
            self.unsent = [piece]
        else:
            unsent.append(piece)
        self.unsent_bytes += len(piece)
        if self.unsent_bytes > UNSENT_LIMIT:
            self.conn.pause_reading(_PAUSE_BUFFER)

    def _pick_context(self) -> PickContext:
        conn = self.conn
        backend = self.backend
        source = backend.hash_source
        if not source:
            return PickContext(client_ip=conn.client_ip)
        return PickContext(
            client_ip=conn.client_ip,
            hash_key=_hash_value(self.head, source, backend.hash_name),
        )

    # -- response side ----------------------------------------------------------------

    def response_head(self, upstream: UpstreamConnection, raw: bytes, status: int) -> None:
        """The server's response head `raw` (as received), whose status llhttp read."""
        conn = self.conn
        response = upstream.memo.check(raw, status, conn.limits)
        self.response_started = True
        if self.backend.observe_status and status >= 200 and self.server is not None:
            self.backend.outcomes.response_status(self.server, status)
        if 100 <= status < 200:
            if status == 101:
                raise UpstreamProtocolError("101 Switching Protocols to a request without Upgrade")
            if self.http11:
                conn.write(client_response_head(response, "none", True))
            return
        self.response = response
        is_head = self.head.method == b"HEAD"
        if response.no_body or is_head:
            self.framing = "none"
        elif response.content_length is not None:
            self.framing = "length"
        elif self.http11:
            self.framing = "chunked"
        else:
            self.framing = "close"
        last = conn.closing and not conn.queue  # no pipelined request waits behind this one
        if self.framing == "close" or last or not self.request_done:
            # A request body still arriving would desynchronise the next request.
            self.keep_alive = False
        corked = conn._corked
        if corked is not None:
            self.corked = conn.corks
            self.corked_at = len(corked)
        conn.write(
            upstream.memo.client_head(response, self.framing, self.keep_alive, not self.http11)
        )
        self.head_sent = True
        if is_head and not response.no_body:
            upstream.skip_body()
            upstream.finish_after_read(self)

    def response_body(self, data: bytes) -> None:
        if self.framing == "chunked":
            self.conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        elif self.framing != "none":
            self.conn.write(data)

    def response_complete(self, upstream: UpstreamConnection, reusable: bool = True) -> None:
        """The whole response is here (called by the upstream after its read is parsed,
        never from inside the parser, so nothing else of that read is still pending)."""
        if self.response is None or self.finished:
            return
        if self.upstream is not upstream:
            return
        self.finished = True
        if self.framing == "chunked":
            trailers = self.trailers
            self.conn.write(b"0\r\n%b\r\n" % trailers if trailers else b"0\r\n\r\n")
        elif self.trailers:
            # An HTTP/1.0 client reads the body to the close: no place for trailers
            # (RFC 9112 7.1.2 lets a proxy drop them).
            log.debug("response trailers dropped: the client speaks HTTP/1.0")
        reusable = reusable and self.response.keep_alive and self.request_done
        self.upstream = None
        upstream.release(reusable)
        if self.server is not None:
            self.backend.success(self.server)
        self._release_server()
        self.conn.exchange_finished(self, upstream.read_at)

    def upstream_eof(self, upstream: UpstreamConnection) -> None:
        """The server closed its side; ends a close-delimited response."""
        response = self.response
        if response is None or self.upstream is not upstream:
            return
        if response.content_length is None and not response.chunked and not response.no_body:
            self.response_complete(upstream, reusable=False)

    def upstream_lost(self, upstream: UpstreamConnection, reason: str) -> None:
        if self.upstream is not upstream or self.finished:
            return
        self.upstream = None
        # A pooled connection closed by the server just as we reused it is the
        # classic keep-alive race, not a sign the server is sick.
        counts = not (upstream.reused and not self.response_started)
        self._retry_or_fail(reason, 502, counts_against_server=counts)

    def upstream_bad_response(self, upstream: UpstreamConnection, reason: str) -> None:
        if self.finished:
            return
        if self.upstream is upstream:
            self.upstream = None
        self._upstream_failed(reason, 502)

    def upstream_timeout(self, upstream: UpstreamConnection, timeout: float) -> None:
        if self.finished:
            return
        if self.upstream is upstream:
            self.upstream = None
        self._upstream_failed(f"no response within timeouts.server {timeout:g}s", 504)

    # -- failures, retries ----------------------------------------------------------------

    def _retry_or_fail(self, reason: str, status: int, counts_against_server: bool) -> None:
        server = self.server
        if server is not None and counts_against_server:
            self.backend.failure(server, reason)
        sent_something = status != 503  # a connect failure sent nothing
        replayable = not self.response_started and (not sent_something or self.replayable)
        if replayable and self.attempts <= self.backend.retries and not self.conn.closed:
            if server is not None:
                log.info(
                    "%s %s: %s on %s, retrying on another server",
                    self.head.method.decode(),
                    self.head.target[:80].decode("latin-1"),
                    reason,
                    server.key,
                )
                if counts_against_server:
                    self.avoid = self.avoid | {server.key}
            if sent_something and self.wire is not None:
                self.unsent = list(self.wire)  # replay what the failed server may have seen
                self.unsent_bytes = self.wire_bytes
            if not counts_against_server:
                self.attempts -= 1  # a pooled connection closed under us is not a server failure
            self._release_server()
            self.start()
            return
        where = f" ({server.key})" if server is not None else ""
        self._release_server()
        self.fail(status, f"{reason}{where}")

    def local_failure(self, error: LocalResourceError) -> None:
        """The balancer lacks a resource of its own (a file descriptor, a source port):
        503, counted and logged by the frontend; no server is blamed, and none other is
        tried (it would need the same resource)."""
        if self.finished:
            return
        self._release_server()
        self.conn.frontend.local_failure(error, "request answered 503")
        self.fail(503, error.reason, logged=True)

    def _upstream_failed(self, reason: str, status: int) -> None:
        server = self.server
        if server is not None:
            self.backend.failure(server, reason)
        where = f" ({server.key})" if server is not None else ""
        self._release_server()
        self.fail(status, f"{reason}{where}")

    def fail(self, status: int, detail: str, logged: bool = False) -> None:
        """Answer the client with an error if it has no response head yet, else cut it.
        `logged`: the caller has logged it already."""
        if self.finished:
            return
        self.finished = True
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.close()
        self._release_server()
        conn = self.conn
        if self.head_sent and not conn.unwrite(self.corked, self.corked_at):
            # Part of the response reached the client: it cannot get an error response
            # any more; closing without the end of the body tells it the response is cut.
            log.warning(
                "%s %s: response cut off, its head had already been sent to the client: "
                "%s; client connection closed",
                self.head.method.decode(),
                self.head.target[:80].decode("latin-1"),
                detail,
            )
            conn.abort()
            return
        self.head_sent = False  # taken back, or never written
        if not logged:
            log.warning(
                "%d for %s %s: %s",
                status,
                self.head.method.decode(),
                self.head.target[:80].decode("latin-1"),
                detail,
            )
        conn.send_error_and_close(status, detail)

    def _release_server(self) -> None:
        server = self.server
        if server is not None:
            self.server = None
            self.backend.release(server.key)

    def abandon(self) -> None:
        """The client went away: free the server side."""
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.close()
        self._release_server()


def _hash_value(head: RequestHead, source: str, name: bytes) -> bytes | None:
    """What `hash` hashes in this request: its target (`source` "uri"), or the value of
    header or cookie `name` (lower case)."""
    if source == "uri":
        return head.target
    for key, value in head.headers:
        lower = key.lower()
        if source == "header" and lower == name:
            return value
        if source == "cookie" and lower == b"cookie":
            for part in value.split(b";"):
                k, _, v = part.strip().partition(b"=")
                if k.lower() == name:
                    return v
    return None


class HttpClientConnection:  # an asyncio protocol; see proxy/connect.py for why no base class
    """One client connection on an HTTP frontend."""

    def __init__(self, frontend: FrontendRuntime) -> None:
        # At most 29 attributes: uncompiled, CPython 3.11 keeps an instance's attributes
        # in a dict whose keys its class shares only up to 30 names, and a 30th cost every
        # request ~3.2k more instructions (bench/proxy_path.py, attribute and method
        # lookups no longer specialised). Compiled, they are struct fields either way.
        self.frontend = frontend
        self.loop = frontend.loop
        # Read from the frontend once: it is a Python object, and each attribute read
        # from compiled code is a dictionary lookup. A frontend never changes them.
        self.limits = frontend.limits
        self.pool = frontend.pool
        self.only_backend = frontend.only_backend
        self.client_timeout = frontend.client_timeout
        self.request_timeout = frontend.request_timeout
        self.keep_alive_timeout = frontend.keep_alive_timeout
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client_ip = "0.0.0.0"
        self.client_port = 0
        self.memo: RequestMemo  # set in connection_made, once the peer is known
        self.closed = False
        self.closing = False  # no new request after the current one
        self.active: Exchange | None = None
        self.receiving: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self._paused = 0
        self.write_paused = False
        self.heads = HeadReader()  # where each request head is in what the client sent
        limits = self.limits
        self._head_budget = limits.max_header_bytes + limits.max_request_line + 4096
        self._line_budget = limits.max_request_line + 64  # method, version, CRLF
        self._timer_kind = _TIMER_IDLE
        self.timer = LazyTimer(self.loop, self._timed_out)
        self._corked: list[bytes] | None = None
        self.corks = 0  # cork buffers so far: the current one's number while corked
        self._discarding = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip, self.client_port = peer[0], peer[1]
        self.memo = RequestMemo(self.client_ip, self.client_port, self.frontend.forwarding)
        self.frontend.connection_opened(self)
        # Accepted means served: a frontend at max_connections leaves new clients in
        # the kernel's backlog (see proxy/listener.py), so the head timer starts now.
        self._arm(_TIMER_HEAD, self.request_timeout)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return  # after "Connection: close": finish what we have, read no more
        if self._timer_kind == _TIMER_BODY:
            self.timer.deadline = now() + self.client_timeout
        self.heads.read(data)
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        """Feed `data` (the rest of a read the head reader has) to the parser."""
        heads = self.heads
        try:
            self.parser.feed_data(data)
            heads.end_of_read()
        except httptools.HttpParserUpgrade as upgrade:
            if ignorable_upgrade(self.memo.last_raw):
                # An h2c offer: the request was taken (and answered) as HTTP/1.1, and
                # llhttp goes on with the bytes after it, as HTTP/1.1 too.
                self._parse(data[upgrade.args[0] :] if upgrade.args else b"")
                return
            self._reject(
                400,
                "WebSocket and other protocol upgrades are not supported yet; "
                "pass them through a mode tcp frontend",
            )
        except httptools.HttpParserError as exc:
            # httptools wraps an exception raised in a callback (our policy
            # checks) in HttpParserCallbackError, keeping it as __context__.
            cause = exc.__context__
            if isinstance(cause, ClientProtocolError):
                self._reject(cause.status, cause.reason)
            elif cause is not None and not isinstance(cause, httptools.HttpParserError):
                log.error("internal error handling a request", exc_info=cause)
                self._reject(500, "internal error in the proxy (see its log)")
            elif self.closing and (self.active is not None or self.queue):
                # e.g. llhttp's "data after Connection: close": the requests before it
                # are valid and get their answers; the rest is not read.
                self._discard_input()
            else:
                self._reject(400, f"malformed request: {parser_reason(exc)}")
        else:
            if heads.in_head:
                # The start of an incomplete head is kept (see HeadReader): stop a head
                # that never ends.
                carried = heads.carried
                if carried > self._line_budget and heads.in_first_line:
                    self._reject(414, "request line too long")
                elif carried > self._head_budget:
                    self._reject(431, "request header section too large")
                elif self.active is None and self._timer_kind != _TIMER_HEAD:
                    self._arm(_TIMER_HEAD, self.request_timeout)
            elif heads.carried > self._head_budget:  # llhttp bounds neither of them
                self._reject(431, "request chunk size line or trailer section too large")

    def eof_received(self) -> bool:
        if self.active is None and not self.queue:
            self.close()
            return False
        # Let the current exchange finish, then close (client half-closed).
        self.closing = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.timer.cancel()
        for exchange in (self.active, *self.queue):
            if exchange is not None:
                exchange.abandon()
        self.active = None
        self.queue.clear()
        self.frontend.connection_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None and self.active.upstream is not None:
            self.active.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None and self.active.upstream is not None:
            self.active.upstream.resume_reading()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.heads.message_begun()
        # The head timer is armed only if the head is still incomplete at the end of
        # this read (see data_received): most heads arrive whole, and need none.

    # No on_url or on_header: the head is taken whole (see proxy/heads.py). Exact size
    # and count limits are checked by the policy; `data_received` bounds memory meanwhile.

    def on_headers_complete(self) -> None:
        if self.closing:
            # A request after "Connection: close" (or during a graceful stop): not served,
            # but the ones before it still are.
            self._discard_input()
            return
        heads = self.heads
        head, wire = self.memo.check(heads.take(), self.limits)
        heads.skip(head.body_length, head.chunked)
        exchange = Exchange(self, head, wire, self.only_backend or self.frontend.route(head))
        self.receiving = exchange
        if not head.keep_alive or self.frontend.stopping:
            # After a reload, the old frontend answers this request and closes: the
            # client's next request goes to a new connection, on the new config.
            self.closing = True
        if self.active is None:
            self.active = exchange
            self._arm(_TIMER_NONE if exchange.request_done else _TIMER_BODY, self.client_timeout)
            exchange.start()
        else:
            self.queue.append(exchange)
            self.pause_reading(_PAUSE_QUEUE)

    def on_body(self, body: bytes) -> None:
        if self.receiving is not None:
            self.receiving.request_body(body)

    def on_message_complete(self) -> None:
        heads = self.heads
        heads.message_done()
        exchange = self.receiving
        self.receiving = None
        if exchange is None:
            return
        if not exchange.request_done:
            trailers = heads.trailers
            if trailers:
                # Checked before the request's last chunk goes out: a server never sees
                # the end of a request whose trailers are refused (the client gets 400).
                trailers = check_trailers(trailers, self.limits, "request")
            exchange.request_complete(trailers)
        if exchange is self.active and self._timer_kind == _TIMER_BODY:
            self._arm(_TIMER_NONE, 0)

    # -- used by exchanges ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        corked = self._corked
        if corked is not None:
            corked.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        """Collect writes until `uncork`: a response head and body that arrived in one
        read leave in one send() instead of two."""
        if self._corked is None:
            self._corked = []
            self.corks += 1

    def unwrite(self, cork: int, at: int) -> bool:
        """Take back what was written from index `at` of cork buffer number `cork`, if
        that buffer is still held (nothing of it was sent). False if it was sent."""
        corked = self._corked
        if corked is None or cork != self.corks:
            return False
        del corked[at:]
        return True

    def uncork(self) -> None:
        corked, self._corked = self._corked, None
        if corked and self.transport is not None and not self.closed:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def exchange_finished(self, exchange: Exchange, at: float) -> None:
        """`exchange` has its whole response, which ended at `at` (`now()` time)."""
        if exchange is not self.active:
            return
        self.active = None
        if self._paused & _PAUSE_UPSTREAM:
            self.resume_reading(_PAUSE_UPSTREAM)  # that server's backpressure is over
        if not exchange.keep_alive or self.closed:
            self.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.active = nxt
            if not self.queue:
                self.resume_reading(_PAUSE_QUEUE)
            if nxt.request_done:
                self._arm(_TIMER_NONE, 0)
            else:
                self._arm_at(_TIMER_BODY, at + self.client_timeout)
            nxt.start()
            return
        if self.closing:
            self.close()
            return
        self._arm_at(_TIMER_IDLE, at + self.keep_alive_timeout)

    def body_too_large(self, received: int) -> None:
        """A chunked request body went over http.max_request_body: 413 if no response byte
        was sent yet, else cut; the server connection, mid-body, is closed, never reused."""
        if self.closed:
            return  # already answered (a server that did not wait for the body) and closed
        self.closing = True
        self._discard_input()
        self._reject(
            413,
            f"chunked request body over http.max_request_body, {self.limits.max_request_body} "
            f"bytes ({received} received)",
        )

    def send_error_and_close(self, status: int, detail: str) -> None:
        self.frontend.count_error(status)
        self.write(error_response(status, detail))
        self.close()

    def pause_reading(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def pause_reading_for_upstream(self) -> None:
        self.pause_reading(_PAUSE_UPSTREAM)

    def resume_reading_for_upstream(self) -> None:
        self.resume_reading(_PAUSE_UPSTREAM)

    # -- lifecycle ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful stop: finish the current exchange, take no new request."""
        self.closing = True
        if self.active is None and not self.queue:
            self.close()

    def retire(self) -> None:
        """Reload: finish the current exchange, and answer one more request if the client
        sends it now (as HAProxy's idle-close-on-response), then close."""
        if self.active is not None or self.queue:
            self.closing = True

    def _discard_input(self) -> None:
        self._discarding = True
        self.receiving = None
        self.pause_reading(_PAUSE_CLOSING)

    def _reject(self, status: int, reason: str) -> None:
        log.info("rejected request from %s: %d %s", self.client_ip, status, reason)
        exchange = self.active
        if exchange is not None and exchange.head_sent:
            self.abort()
            return
        for pending in (self.active, *self.queue):
            if pending is not None:
                pending.abandon()
        self.active = None
        self.queue.clear()
        self.send_error_and_close(status, reason)

    def _arm(self, kind: int, seconds: float) -> None:
        if kind == _TIMER_NONE:
            self._timer_kind = kind
            self.timer.set(None)
        else:
            self._arm_at(kind, now() + seconds)

    def _arm_at(self, kind: int, deadline: float) -> None:
        """Like `_arm`, with the deadline (`now()` time) given."""
        self._timer_kind = kind
        self.timer.set(deadline)

    def _timed_out(self) -> None:
        kind = self._timer_kind
        if kind == _TIMER_IDLE:
            # Like HAProxy on a kept-alive connection: no new request began, so there is
            # nothing to answer; close without a response.
            log.debug("closing idle keep-alive connection from %s", self.client_ip)
            self.close()
        elif kind == _TIMER_HEAD:
            # Armed for a connection's first request, and for a head that began on a
            # kept-alive one: both get a 408, as from HAProxy (which answers "408 Request
            # Time-out" even to a connection that sent nothing).
            if self.heads.in_head or self.active is not None:
                self._reject(408, "request head not received within timeouts.http_request")
            else:
                self._reject(408, "no request received within timeouts.http_request")
        elif kind == _TIMER_BODY:
            self._reject(408, "request body stalled longer than timeouts.client")

    def close(self) -> None:
        if self.closed:
            return
        self.uncork()
        self.closed = True
        self.timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._corked = None
        self.closed = True
        self.timer.cancel()
        if self.transport is not None:
            self.transport.abort()
