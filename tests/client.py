"""A raw HTTP/1.1 test client: send exact bytes, parse whatever comes back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name.lower().encode():
                return v
        return None


@dataclass
class _Collector:
    responses: list[Response] = field(default_factory=list)
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _body: bytearray = field(default_factory=bytearray)
    parser: httptools.HttpResponseParser | None = None

    def on_message_begin(self) -> None:
        self._headers, self._body = [], bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.responses.append(
            Response(self.parser.get_status_code(), self._headers, bytes(self._body))
        )


class Client:
    """One client connection; `send` raw bytes, `read` n responses or until close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.collector = _Collector()
        self.collector.parser = httptools.HttpResponseParser(self.collector)
        self.closed = False

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> Client:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, count: int = 1, timeout: float = 5.0) -> list[Response]:
        async with asyncio.timeout(timeout):
            while len(self.collector.responses) < count and not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    self.closed = True
                    break
                self.collector.parser.feed_data(data)  # type: ignore[union-attr]
        got = self.collector.responses[:count]
        del self.collector.responses[:count]
        return got

    async def wait_closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while not self.closed:
                    data = await self.reader.read(65536)
                    if not data:
                        self.closed = True
        except (TimeoutError, ConnectionResetError):
            return isinstance(self.closed, bool) and self.closed
        return True

    def close(self) -> None:
        self.writer.close()


def get(target: str = "/", host: str = "example.com", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def request(port: int, data: bytes, timeout: float = 5.0) -> Response | None:
    client = await Client.connect(port)
    try:
        client.send(data)
        got = await client.read(1, timeout)
        return got[0] if got else None
    finally:
        client.close()
