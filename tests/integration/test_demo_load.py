"""The demo's load generator, against servers that close kept-alive connections."""

from __future__ import annotations

import asyncio
import contextlib

from bascule.demo.load import LoadGenerator

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Server: s1\r\n\r\nok"


async def one_answer_per_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers a connection's first request; closes it, unanswered, at the second: what
    a client sees when its kept-alive connection hits the server's idle timeout just as
    the next request leaves."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ANSWER)
    await writer.drain()
    with contextlib.suppress(asyncio.IncompleteReadError):  # the client closed it first
        await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def test_a_request_on_a_connection_the_server_closed_is_sent_again() -> None:
    server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    load = LoadGenerator("127.0.0.1", port, rate=100, new_connection_every=5)
    async with server:
        await load.run(duration=1.0)
    assert len(load.outcomes) >= 90
    assert [o.error for o in load.outcomes if not o.ok] == []
    assert {o.server for o in load.outcomes} == {"s1"}


async def test_a_connection_cut_mid_answer_is_still_a_failure() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER[:20])  # part of a head, then the connection ends
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    load = LoadGenerator("127.0.0.1", port, rate=50)
    async with server:
        await load.run(duration=0.5)
    assert load.outcomes and all(o.error == "connection closed mid-response" for o in load.outcomes)
