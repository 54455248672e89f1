"""A small keep-alive HTTP/1.1 server that says who it is.

Run as `python -m bascule.demo.backend --name s1 --port 9001`. Every
response carries `X-Server: <name>` and the body `<name>\n`, so a client can
tell which server answered. Used by the demo and by tests as a real backend.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import httptools


class _Handler(asyncio.Protocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()

    def on_message_complete(self) -> None:
        body = self.name + b"\n"
        keep = self.parser.should_keep_alive()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Server: %b\r\n"
            b"Content-Length: %d\r\n%b\r\n"
            % (self.name, len(body), b"" if keep else b"Connection: close\r\n")
        )
        if self.transport is not None:
            self.transport.write(head + body)
            if not keep:
                self.transport.close()


async def serve(name: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Handler(name.encode()), host, port, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.name, args.host, args.port))


if __name__ == "__main__":
    main()
