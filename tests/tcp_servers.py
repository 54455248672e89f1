"""Raw TCP servers for L4 proxy tests, started in the test's event loop.

A `TcpServer` listens on a free loopback port and runs one `Handler` per
connection (echo, reply-after-EOF, push N bytes...). It counts connections
and keeps per-connection facts a test can assert on, such as how many bytes
a pushing server got its kernel to accept. Every started server is recorded
in `LIVE` so a fixture can stop it after the test, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

LIVE: list[TcpServer] = []  # started servers; a fixture stops them after each test

CHUNK = 64 * 1024


@dataclass
class TcpServer:
    """A TCP server on 127.0.0.1 whose connections are served by `handler`."""

    handler: Handler
    port: int = 0
    connection_count: int = 0
    server: asyncio.base_events.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> TcpServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        LIVE.append(self)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        self.connection_count += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away: that is the test's business, not an error here
        finally:
            writer.close()
            self.tasks.discard(task)

    async def stop(self) -> None:
        """Close the listener, reset every connection and end every handler."""
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if server is not None:
            await server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte received; close after the client's EOF."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


def greet_then_echo(name: str) -> Handler:
    """Say `name\\n` on connect (so a client knows which server it reached), then echo."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode() + b"\n")
        await writer.drain()
        await echo(reader, writer)

    return handler


@dataclass
class DigestAfterEof:
    """Read until EOF, then answer `<count> <sha256>\\n` plus `trailer`, then close.

    `saw_eof` proves the client's half-close reached the server.
    """

    trailer: bytes = b""
    saw_eof: bool = False

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest, count = hashlib.sha256(), 0
        while data := await reader.read(CHUNK):
            digest.update(data)
            count += len(data)
        self.saw_eof = True
        writer.write(b"%d %s\n" % (count, digest.hexdigest().encode()) + self.trailer)
        await writer.drain()


@dataclass
class Pusher:
    """Push `payload` as fast as the connection accepts it, then close.

    `accepted` is how many bytes the server's kernel has taken so far: it stops
    growing when the path to the client is full, which is what backpressure is.
    """

    payload: bytes
    accepted: int = 0
    finished: bool = False

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        view = memoryview(self.payload)
        for start in range(0, len(view), CHUNK):
            chunk = view[start : start + CHUNK]
            writer.write(chunk)
            await writer.drain()
            self.accepted += len(chunk)
        self.finished = True
