"""Misbehaving and well-behaved health-check endpoints for probe tests.

Each function returns a `tcp_servers.Handler`: run it with
`await TcpServer(handler).start()` (the test's fixture stops every started
server). HTTP handlers read the request head first, so the probe's request is
what they answer; `Recorder` keeps those heads for tests that assert on them.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from tcp_servers import Handler

CHUNK = 64 * 1024


@dataclass
class Recorder:
    """Collects what clients sent before the server answered."""

    received: list[bytes] = field(default_factory=list)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Everything up to the end of an HTTP request head (or EOF)."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial


def response(status: int, body: bytes = b"ok\n", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%bConnection: close\r\n\r\n%b" % (
        status,
        len(body),
        extra,
        body,
    )


def http_answer(raw: bytes, recorder: Recorder | None = None) -> Handler:
    """Read the request head, send `raw` as the answer, close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if recorder is not None:
            recorder.received.append(head)
        writer.write(raw)
        await writer.drain()

    return handler


def http_status(status: int, body: bytes = b"ok\n") -> Handler:
    return http_answer(response(status, body))


def flapping(statuses: Iterable[int]) -> Handler:
    """Answer each connection with the next status of `statuses`, round and round."""
    cycle = itertools.cycle(statuses)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(response(next(cycle)))
        await writer.drain()

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read whatever comes, never say a word."""
    while await reader.read(CHUNK):
        pass


def endless_body(sent: list[int]) -> Handler:
    """A 200 whose close-delimited body never ends; `sent[0]` counts body bytes
    the server's kernel accepted."""
    sent.append(0)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"x" * CHUNK
        while True:
            writer.write(chunk)
            await writer.drain()
            sent[0] += len(chunk)

    return handler


def dribble(data: bytes, every: float) -> Handler:
    """Send `data` one byte at a time, one byte every `every` seconds."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)
        await silent(reader, writer)

    return handler


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then drop the connection with a TCP reset."""
    await read_head(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


def agent(answer: bytes, recorder: Recorder | None = None, expect: int = 0) -> Handler:
    """An HAProxy agent: read `expect` bytes (the probe's `send`), answer, close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if expect:
            received = await reader.readexactly(expect)
            if recorder is not None:
                recorder.received.append(received)
        writer.write(answer)
        await writer.drain()

    return handler


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FullBacklog:
    """A listener whose accept queue is full and never drained, so a new connect
    hangs (the kernel drops its SYN): what a blackholed server looks like."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        # The queue holds backlog + 1 connections; a few extra connects make sure
        # whatever the kernel's exact accounting, the next one is dropped.
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.listener.close()
