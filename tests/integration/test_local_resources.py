"""The balancer's own shortages (file descriptors) are never blamed on a server.

These tests run Bascule in the test's process and lower that process's soft
RLIMIT_NOFILE for a moment to just above the descriptors already open, so the next
socket() or accept() fails with EMFILE, exactly as under a real `ulimit -n` (see
test_fd_limit_process.py for the whole daemon under a low limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
from collections.abc import Iterator

import pytest

from backends import Backend
from client import Client, get
from harness import free_port, http_config, running
from tcp_servers import TcpServer, echo


def _lowest_free_fd() -> int:
    fd = os.open(os.devnull, os.O_RDONLY)  # the kernel hands out the lowest free number
    os.close(fd)
    return fd


@contextlib.contextmanager
def no_new_descriptors(spare: int = 0) -> Iterator[None]:
    """Until the block ends, every new descriptor of this process but `spare` fails
    with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd() + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def accepted_clients(port: int, count: int) -> list[Client]:
    """`count` client connections, each accepted by the frontend by the time this returns."""
    clients = [await Client.connect(port) for _ in range(count)]
    await asyncio.sleep(0.2)  # the listener's accept runs on the next loop turns
    return clients


async def test_http_requests_without_a_descriptor_get_503_and_no_server_is_ejected() -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, backend_extra="passive: {max_fails: 2}")
    async with running(cfg) as app:
        clients = await accepted_clients(port, 3)
        for client in clients:
            # One at a time: a descriptor freed by one answer would serve the next.
            with no_new_descriptors():
                client.send(get())
                (response,) = await client.read(timeout=3)
            assert response.status == 503
            assert b"load balancer out of file descriptors (EMFILE)" in response.body
        assert app.journal.recent("server.ejected") == []
        assert app.journal.recent("server.down") == []
        (frontend,) = app.frontends
        assert frontend.local_errors == {"EMFILE": 3}
        # Once descriptors are free again, the same server serves at once.
        client = await Client.connect(port)
        client.send(get())
        assert (await client.read())[0].status == 200
        client.close()
        for client in clients:
            client.close()


async def test_idle_server_connections_are_closed_to_free_descriptors() -> None:
    s1, s2 = await Backend("s1").start(), await Backend("s2").start()
    port = free_port()
    async with running(http_config(port, {"s1": s1.port, "s2": s2.port})) as app:
        first, second, third = await accepted_clients(port, 3)
        first.send(get())
        assert (await first.read())[0].status == 200  # s1, its connection kept idle
        assert app.pool.idle_count() == 1
        with no_new_descriptors():
            second.send(get())  # s2: no idle connection, no descriptor for a new one
            assert (await second.read(timeout=3))[0].status == 503
            assert app.pool.idle_count() == 0
            third.send(get())  # s1 again: a new connection, on the descriptor freed
            assert (await third.read(timeout=3))[0].status == 200
        for client in (first, second, third):
            client.close()


async def test_tcp_connections_without_a_descriptor_are_closed_and_no_server_is_ejected() -> None:
    server = await TcpServer(echo).start()
    port = free_port()
    cfg = http_config(
        port, {"s1": server.port}, backend_extra="passive: {max_fails: 2}", mode="tcp"
    )
    loop = asyncio.get_running_loop()
    async with running(cfg) as app:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port))  # waits in the backlog
            sock.setblocking(False)
            with no_new_descriptors(spare=1):  # one for the accept, none for the server
                async with asyncio.timeout(3):
                    assert await loop.sock_recv(sock, 100) == b""  # closed by Bascule
            sock.close()
        assert app.journal.recent("server.ejected") == []
        (frontend,) = app.frontends
        assert frontend.local_errors == {"EMFILE": 3}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
        writer.close()
    await server.stop()


async def test_an_accept_without_a_descriptor_is_logged_and_the_client_served_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})) as app:
        # Connected by the kernel (backlog) before the listener gets a turn to accept.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        with caplog.at_level(logging.ERROR, "bascule.listener"), no_new_descriptors():
            await asyncio.sleep(0.3)  # accept() fails, then again after each 100 ms pause
        (frontend,) = app.frontends
        assert frontend.accept_errors.get("EMFILE", 0) >= 1
        assert "cannot accept connections: load balancer out of file descriptors" in caplog.text
        assert "ulimit -n" in caplog.text
        # Left in the backlog, not closed: served once descriptors are free.
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(get())
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 3)).startswith(b"HTTP/1.1 200")
        writer.close()


@pytest.mark.parametrize(
    "check",
    [
        "{type: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 1}",
        "{type: http, interval: 300ms, timeout: 200ms, rise: 1, fall: 1, http: {path: /}}",
        "{type: command, interval: 300ms, timeout: 200ms, rise: 1, fall: 1, "
        "command: {path: /bin/true}}",
    ],
)
async def test_a_check_without_a_descriptor_is_no_verdict(
    check: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, backend_extra=f"check: {check}")
    async with running(cfg) as app:
        # From before the first check (each server's is spread over one interval), so
        # the checker has no socket to reuse either.
        with caplog.at_level(logging.WARNING, "bascule.health"), no_new_descriptors():
            await asyncio.sleep(0.8)
        assert app.journal.recent("server.down") == []
        assert app.controllers["be"].runner.local_errors >= 2
        assert "health check of be/s1 not run: " in caplog.text
        assert "load balancer out of file descriptors (EMFILE)" in caplog.text
