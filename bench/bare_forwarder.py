"""The floor for a Python L7 proxy: a bare uvloop + httptools keep-alive forwarder.

    python bench/bare_forwarder.py LISTEN_PORT BACKEND_PORT [BACKEND_PORT...]

It listens on 127.0.0.1:LISTEN_PORT, parses each request with httptools only to find
where it ends, and forwards its bytes unchanged to a pooled keep-alive connection to the
next backend (round robin); the response's bytes go back unchanged. No header policy,
no X-Forwarded-*, no timeouts, no retries, no error answers, no events: it is not a
proxy anyone should run, only what `proxy_bench.py` measures as the cost of the Python
path itself ("bare" rows). Bascule's CPU per request minus this one is what its
features cost.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import deque

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a backend, serving one client request at a time."""

    def __init__(self, idle: list[Upstream]) -> None:
        self.idle = idle
        self.client: Client | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        self.idle.append(self)
        if client is not None:
            client.response_done()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.idle:
            self.idle.remove(self)


class Client(asyncio.Protocol):
    """One client connection; pipelined requests are sent one after another."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pieces: list[bytes] = []
        self.waiting: deque[bytes] = deque()
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # a response still on its way is dropped

    def on_message_complete(self) -> None:
        # Assumes each read ends on a request boundary, true for wrk's small GETs.
        self.waiting.append(b"".join(self.pieces))
        self.pieces.clear()
        if not self.busy:
            self.send_next()

    def send_next(self) -> None:
        if self.waiting:
            self.busy = True
            self.forwarder.send(self, self.waiting.popleft())

    def response_done(self) -> None:
        self.busy = False
        self.send_next()


class Forwarder:
    def __init__(self, loop: asyncio.AbstractEventLoop, ports: list[int]) -> None:
        self.loop = loop
        self.idle: dict[int, list[Upstream]] = {port: [] for port in ports}
        self.next_port = itertools.cycle(ports)

    def send(self, client: Client, request: bytes) -> None:
        port = next(self.next_port)
        idle = self.idle[port]
        if idle:
            upstream = idle.pop()
            upstream.client = client
            assert upstream.transport is not None
            upstream.transport.write(request)
        else:
            self.loop.create_task(self.connect(port, client, request))

    async def connect(self, port: int, client: Client, request: bytes) -> None:
        idle = self.idle[port]
        transport, upstream = await self.loop.create_connection(
            lambda: Upstream(idle), "127.0.0.1", port
        )
        upstream.client = client
        transport.write(request)


async def serve(listen_port: int, backend_ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    forwarder = Forwarder(loop, backend_ports)
    server = await loop.create_server(lambda: Client(forwarder), "127.0.0.1", listen_port)
    await server.serve_forever()


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    uvloop.run(serve(int(sys.argv[1]), [int(port) for port in sys.argv[2:]]))


if __name__ == "__main__":
    main()
