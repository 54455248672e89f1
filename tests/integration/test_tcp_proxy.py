"""The L4 TCP proxy end to end: real client sockets, real Bascule, real TCP servers."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest

from harness import free_port, http_config, running
from tcp_servers import LIVE, DigestAfterEof, Pusher, TcpServer, echo, greet_then_echo

MB = 1024 * 1024
CHUNK = 64 * 1024
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


_CLIENTS: list[asyncio.StreamWriter] = []  # closed after each test, even a failed one


@pytest.fixture(autouse=True)
async def _close_clients_and_stop_servers() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        writer = _CLIENTS.pop()  # keep it referenced until the abort is done
        writer.transport.abort()
    while LIVE:
        await LIVE.pop().stop()


def tcp_config(port: int, servers: dict[str, int], backend_extra: str = "", **kw: str) -> str:
    return http_config(port, servers, backend_extra=backend_extra, mode="tcp", **kw)


async def connect(port: int, rcvbuf: int | None = None) -> Stream:
    """A client connection to Bascule; `rcvbuf` pins a small kernel receive buffer."""
    if rcvbuf is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    else:
        sock = socket.socket()
        # Set before connecting so the advertised window is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
    _CLIENTS.append(writer)
    return reader, writer


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    async with asyncio.timeout(timeout):
        return await reader.read()


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the peer ends the connection (EOF or reset) within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(CHUNK):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_bytes_are_forwarded_intact_both_ways() -> None:
    server = await TcpServer(echo).start()
    port = free_port()
    sent = payload(5 * MB, seed=1)
    async with running(tcp_config(port, {"echo": server.port})):
        reader, writer = await connect(port)

        async def send_all() -> None:
            for start in range(0, len(sent), CHUNK):
                writer.write(sent[start : start + CHUNK])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send_all())
        received = await read_to_eof(reader)
        await sender
        writer.close()
    assert len(received) == len(sent)
    assert hashlib.sha256(received).digest() == hashlib.sha256(sent).digest()


async def test_half_close_reaches_the_server_and_its_reply_still_reaches_the_client() -> None:
    trailer = payload(1 * MB, seed=2)
    handler = DigestAfterEof(trailer=trailer)
    server = await TcpServer(handler).start()
    port = free_port()
    request = payload(256 * 1024, seed=3)
    async with running(tcp_config(port, {"digest": server.port})):
        reader, writer = await connect(port)
        writer.write(request)
        writer.write_eof()  # "I am done sending", while still wanting the answer
        reply = await read_to_eof(reader)
        writer.close()
    assert handler.saw_eof
    expected_head = b"%d %s\n" % (len(request), hashlib.sha256(request).hexdigest().encode())
    assert reply[: len(expected_head)] == expected_head
    assert reply[len(expected_head) :] == trailer


async def test_refused_connects_are_retried_on_other_servers_unnoticed_by_clients() -> None:
    live = await TcpServer(greet_then_echo("live")).start()
    dead = {"dead1": free_port(), "dead2": free_port()}  # nothing listens there
    port = free_port()
    # Random picks would often repeat a dead server if a retry could pick the one
    # that just failed: with 2 retries over 2 dead servers every attempt must move on.
    cfg = tcp_config(
        port,
        {**dead, "live": live.port},
        backend_extra="""
        algorithm: random
        retries: 2
        passive: {max_fails: 0, fail_timeout: 1s}
        """,
    )
    async with running(cfg):
        for i in range(20):
            reader, writer = await connect(port)
            assert await asyncio.wait_for(reader.readline(), 5) == b"live\n"
            writer.write(b"ping %d\n" % i)
            assert await asyncio.wait_for(reader.readline(), 5) == b"ping %d\n" % i
            writer.close()
    assert live.connection_count == 20


async def test_all_servers_down_closes_the_client_connection_promptly() -> None:
    port = free_port()
    cfg = tcp_config(
        port,
        {"dead1": free_port(), "dead2": free_port()},
        backend_extra="passive: {max_fails: 1, fail_timeout: 30s}",
    )
    async with running(cfg):
        # First while both are still "up" (each connect is refused), then once
        # passive detection has marked both down (no server to try at all).
        for _ in range(2):
            reader, writer = await connect(port)
            writer.write(b"hello?")
            assert await closed_within(reader, timeout=2.0)
            writer.close()


async def test_client_that_does_not_read_holds_back_the_server_not_bascule_memory() -> None:
    data = payload(50 * MB, seed=4)
    pusher = Pusher(data)
    server = await TcpServer(pusher).start()
    port = free_port()
    async with running(tcp_config(port, {"pusher": server.port})) as app:
        frontend = app.frontends[0]
        reader, writer = await connect(port, rcvbuf=64 * 1024)
        largest_buffer = 0
        # Let the server push until the path to the silent client is full.
        previous, stable_for = -1, 0
        for _ in range(100):
            await asyncio.sleep(0.05)
            for session in frontend.connections:
                client = getattr(session, "client", None)
                if client is not None:
                    largest_buffer = max(largest_buffer, client.get_write_buffer_size())
            stable_for = stable_for + 1 if pusher.accepted == previous else 0
            previous = pusher.accepted
            if stable_for >= 10:
                break
        stalled_at = pusher.accepted
        assert not pusher.finished, "the server pushed 50 MB into a client that reads nothing"
        assert stalled_at < 40 * MB
        assert largest_buffer < 4 * MB, f"Bascule buffered {largest_buffer} bytes in memory"
        # The data held back is not lost: once the client reads, all of it arrives.
        received = await read_to_eof(reader, timeout=30)
        writer.close()
    assert pusher.finished
    assert len(received) == len(data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


async def test_idle_timeout_closes_a_silent_session_but_not_a_chatty_one() -> None:
    server = await TcpServer(echo).start()
    port = free_port()
    cfg = tcp_config(
        port,
        {"echo": server.port},
        backend_extra="timeouts: {server: 300ms}",
        frontend_extra="timeouts: {client: 300ms}",
    )
    async with running(cfg):
        reader, writer = await connect(port)
        for i in range(8):  # 0.8 s of traffic, each gap well under the 300 ms timeout
            await asyncio.sleep(0.1)
            writer.write(b"%d\n" % i)
            assert await asyncio.wait_for(reader.readline(), 2) == b"%d\n" % i
        loop = asyncio.get_running_loop()
        silent_since = loop.time()
        assert await closed_within(reader, timeout=3.0)
        idle = loop.time() - silent_since
        writer.close()
        assert 0.25 <= idle < 2.0, f"closed after {idle:.2f}s of silence, timeout is 0.3s"
        # The server side of the session is closed too, not leaked.
        async with asyncio.timeout(2):
            while server.tasks:
                await asyncio.sleep(0.02)


async def test_round_robin_spreads_new_connections_across_servers() -> None:
    a = await TcpServer(greet_then_echo("a")).start()
    b = await TcpServer(greet_then_echo("b")).start()
    port = free_port()
    reached: list[str] = []
    async with running(tcp_config(port, {"a": a.port, "b": b.port})):
        for _ in range(10):
            reader, writer = await connect(port)
            reached.append((await asyncio.wait_for(reader.readline(), 5)).decode().strip())
            writer.close()
    assert Counter(reached) == {"a": 5, "b": 5}
    assert all(x != y for x, y in pairwise(reached)), reached
