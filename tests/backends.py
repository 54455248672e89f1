"""Real HTTP backends for integration tests, started in the test's event loop.

Each `Backend` listens on a free loopback port and answers according to its
`mode`; it records every raw request it received so a test can assert what
reached the server (and what never did).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httptools

Respond = Callable[["Request", asyncio.Transport], Awaitable[None] | None]

LIVE: list[Backend] = []  # started backends; an autouse fixture stops them after each test


@dataclass
class Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name.lower().encode():
                return v
        return None


def ok_response(body: bytes, extra: bytes = b"", keep_alive: bool = True) -> bytes:
    conn = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b%b\r\n%b" % (len(body), extra, conn, body)


class _Conn(asyncio.Protocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.body = bytearray()
        self.trailers: list[tuple[bytes, bytes]] | None = None  # after the head: trailers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.backend.connections.append(self)
        self.backend.connection_count += 1

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self.backend.connections.remove(self)

    def data_received(self, data: bytes) -> None:
        self.raw += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.headers, self.url, self.body, self.trailers = [], b"", bytearray(), None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.trailers is not None:
            self.trailers.append((name, value))  # llhttp reports chunked trailers here
        else:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.trailers = []

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        req = Request(
            self.parser.get_method(),
            self.url,
            self.headers,
            bytes(self.body),
            bytes(self.raw),
            self.trailers or [],
        )
        self.raw = bytearray()
        self.backend.requests.append(req)
        assert self.transport is not None
        result = self.backend.respond(req, self.transport)
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            self.backend.tasks.add(task)
            task.add_done_callback(self.backend.tasks.discard)


@dataclass
class Backend:
    """A real HTTP server on 127.0.0.1; `respond` decides what it answers."""

    name: str
    respond: Respond = field(default=None)  # type: ignore[assignment]
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: list[_Conn] = field(default_factory=list)
    connection_count: int = 0
    server: asyncio.base_events.Server | None = None
    tasks: set[asyncio.Future[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.respond is None:
            self.respond = self._default

    def _default(self, req: Request, transport: asyncio.Transport) -> None:
        transport.write(
            ok_response(self.name.encode() + b"\n", b"X-Server: " + self.name.encode() + b"\r\n")
        )

    async def start(self, port: int = 0) -> Backend:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _Conn(self), "127.0.0.1", port or self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]
        LIVE.append(self)
        return self

    async def stop(self, abort: bool = True) -> None:
        """Stop like a crash: close the listener and reset every connection."""
        server, self.server = self.server, None
        for conn in list(self.connections):
            if conn.transport is not None:
                if abort:
                    conn.transport.abort()
                else:
                    conn.transport.close()
        self.connections.clear()
        if server is not None:
            server.close()
            await server.wait_closed()
        for task in list(self.tasks):
            task.cancel()


async def hang(req: Request, transport: asyncio.Transport) -> None:
    """Accept the request and never answer."""
    await asyncio.sleep(3600)


def status(code: int) -> Respond:
    def respond(req: Request, transport: asyncio.Transport) -> None:
        transport.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % code)

    return respond


def reset(req: Request, transport: asyncio.Transport) -> None:
    """Reset the connection after reading the request, before any response byte."""
    transport.abort()


def raw(data: bytes, close: bool = False) -> Respond:
    def respond(req: Request, transport: asyncio.Transport) -> None:
        transport.write(data)
        if close:
            transport.close()

    return respond
