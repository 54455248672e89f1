"""An unexpected error (a bug of Bascule's) while connecting to a server is not lost.

A connect to a server runs as a task of its own. These tests make that connect raise
something no connect should (a RuntimeError, in-process: the proxy modules' own
`open_connection` is replaced for one call) and check what an operator and the clients
see: the error and its traceback in the log, the client answered 502 (HTTP) or closed
(TCP) instead of left waiting, the server neither blamed nor left counted as busy, and
every other connection served as before.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import bascule.proxy.http
import bascule.proxy.tcp
from backends import Backend
from client import Client, get
from harness import free_port, http_config, running
from tcp_servers import TcpServer, echo

INJECTED = "injected bug in the connect path"


def raise_once(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`real`, except that its first call raises a RuntimeError."""
    calls = 0

    async def open_connection(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(INJECTED)
        return await real(*args, **kwargs)

    return open_connection


def assert_logged_with_traceback(caplog: pytest.LogCaptureFixture, words: str) -> None:
    [record] = [r for r in caplog.records if words in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and INJECTED in str(record.exc_info[1])


async def test_http_client_gets_502_and_the_bug_is_logged_others_unaffected(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = await Backend("s1").start()
    port = free_port()
    cfg = http_config(port, {"s1": backend.port}, backend_extra="passive: {max_fails: 1}")
    async with running(cfg) as app:
        other = await Client.connect(port)  # a keep-alive client served before and after
        other.send(get())
        assert (await other.read())[0].status == 200
        app.pool.close_all()  # so that the next request needs a new server connection
        real = bascule.proxy.http.open_connection
        monkeypatch.setattr(bascule.proxy.http, "open_connection", raise_once(real))

        victim = await Client.connect(port)
        victim.send(get("/hit-the-bug"))
        [response] = await victim.read(timeout=5)
        assert response.status == 502
        assert b"internal error connecting to be/s1" in response.body
        victim.close()
        assert_logged_with_traceback(caplog, "GET /hit-the-bug: unexpected error connecting")

        other.send(get())
        assert (await other.read())[0].status == 200
        fresh = await Client.connect(port)
        fresh.send(get())
        assert (await fresh.read())[0].status == 200
        fresh.close()
        other.close()
        assert app.journal.recent("server.ejected") == []  # not the server's fault
        assert set(app.controllers["be"].runtime.loads.values()) == {0}
        assert app.frontends[0].connecting == set()  # each task let go once done
    await backend.stop()


async def test_tcp_client_is_closed_and_the_bug_is_logged_others_unaffected(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = await TcpServer(echo).start()
    port = free_port()
    cfg = http_config(
        port, {"s1": server.port}, backend_extra="passive: {max_fails: 1}", mode="tcp"
    )
    loop = asyncio.get_running_loop()
    async with running(cfg) as app:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"before")
        assert await asyncio.wait_for(reader.readexactly(6), 3) == b"before"
        real = bascule.proxy.tcp.open_connection
        monkeypatch.setattr(bascule.proxy.tcp, "open_connection", raise_once(real))

        with socket.create_connection(("127.0.0.1", port)) as victim:
            victim.setblocking(False)
            async with asyncio.timeout(5):
                assert await loop.sock_recv(victim, 100) == b""  # closed by Bascule
        assert_logged_with_traceback(caplog, "tcp fe: unexpected error connecting")

        writer.write(b"after")  # the session opened before is untouched
        assert await asyncio.wait_for(reader.readexactly(5), 3) == b"after"
        fresh_reader, fresh_writer = await asyncio.open_connection("127.0.0.1", port)
        fresh_writer.write(b"fresh")
        assert await asyncio.wait_for(fresh_reader.readexactly(5), 3) == b"fresh"
        fresh_writer.close()
        writer.close()
        assert app.journal.recent("server.ejected") == []
        # Once those two are closed, nothing is counted on s1: the failed connect
        # released it too.
        loads = app.controllers["be"].runtime.loads
        async with asyncio.timeout(3):
            while sum(loads.values()) != 0:
                await asyncio.sleep(0.02)
        assert app.frontends[0].connecting == set()
    await server.stop()


async def test_an_error_escaping_a_connect_task_is_logged_and_the_task_let_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(http_config(free_port(), {"s1": free_port()})) as app:
        [frontend] = app.frontends
        gate = asyncio.Event()

        async def connect() -> None:
            await gate.wait()
            raise RuntimeError(INJECTED)

        frontend.connect_soon(connect())
        await asyncio.sleep(0)
        assert len(frontend.connecting) == 1  # held while it runs
        gate.set()
        async with asyncio.timeout(3):
            while frontend.connecting:
                await asyncio.sleep(0.01)
        assert_logged_with_traceback(caplog, "frontend fe: connect to a server failed")
