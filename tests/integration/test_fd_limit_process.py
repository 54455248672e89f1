"""`bascule run` under a low file descriptor limit, and a frontend at max_connections,
seen from outside: real processes, real sockets, /proc for the descriptors it holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from backends import Backend
from client import Client, Response, get
from harness import free_port

REPO = Path(__file__).resolve().parents[2]


def config(port: int, backend_port: int, frontend_extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        global: {{grace: 1s, log_level: info}}
        frontends:
          - name: web
            bind: "127.0.0.1:{port}"
            default_backend: app
            timeouts: {{http_request: 2s}}
            {frontend_extra}
        backends:
          - name: app
            servers:
              - {{name: s1, address: 127.0.0.1, port: {backend_port}}}
        """
    )


def fd_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@contextlib.asynccontextmanager
async def bascule(
    tmp_path: Path, text: str, port: int, limit: int | None = None
) -> AsyncIterator[tuple[int, Path]]:
    """`bascule run` on `text` until the block ends; yields (pid, log path)."""
    path = tmp_path / "bascule.yaml"
    path.write_text(text)
    log = tmp_path / "bascule.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bascule",
            "run",
            "-c",
            str(path),
            cwd=REPO,
            stdout=out,
            stderr=out,
            preexec_fn=fd_limit(limit) if limit else None,
        )
    try:
        deadline = time.monotonic() + 15
        while b"listening on" not in log.read_bytes():
            assert proc.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        yield proc.pid, log
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def answered(client: Client, timeout: float) -> Response | None:
    try:
        got = await client.read(timeout=timeout)
    except (TimeoutError, ConnectionError):
        return None
    return got[0] if got else None


async def test_a_full_frontend_leaves_new_clients_in_the_backlog(tmp_path: Path) -> None:
    backend = await Backend("s1").start()
    port = free_port()
    text = config(port, backend.port, "max_connections: 2")
    async with bascule(tmp_path, text, port) as (pid, _log):
        warm_up = await Client.connect(port)  # the loop opens a spare descriptor once
        warm_up.send(get())
        assert await answered(warm_up, 3) is not None
        warm_up.close()
        await asyncio.sleep(0.2)
        before = descriptors(pid)  # with one pooled server connection
        clients = [await Client.connect(port) for _ in range(5)]  # connected by the kernel
        for client in clients:
            client.send(get())
        assert [(await answered(c, 3)) is not None for c in clients[:2]] == [True, True]
        assert [await answered(c, 0.3) for c in clients[2:]] == [None, None, None]
        # Two clients and their two server connections: nothing held for the waiting.
        assert descriptors(pid) <= before + 4
        for i in range(3):
            clients[i].close()  # a slot frees: the next client in the backlog is served
            response = await answered(clients[i + 2], 3)
            assert response is not None and response.status == 200
        for client in clients[3:]:
            client.close()


async def test_a_low_fd_limit_never_takes_a_server_down(tmp_path: Path) -> None:
    """The review's scenario: `ulimit -n 256`, 220 idle client connections, then requests."""
    backend = await Backend("s1").start()
    port = free_port()
    async with bascule(tmp_path, config(port, backend.port), port, limit=256) as (_pid, log):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(220)]
        clients: list[Client] = []
        try:
            clients = [await Client.connect(port) for _ in range(50)]
            for client in clients:
                client.send(get())
            # Idle clients are closed after timeouts.http_request (2s), making room.
            responses = await asyncio.gather(*(answered(c, 20) for c in clients))
        finally:
            for sock in idle:
                sock.close()
            for client in clients:
                client.close()
        text = log.read_text()
        # Words, not substrings: every 408 to an idle client is logged as "rejected".
        assert not re.search(r"\bDOWN\b|\bejected\b", text), text
        assert "file descriptor limit 256 carries" in text and "LimitNOFILE=" in text
        for response in responses:
            assert response is not None, text  # waited in the backlog, never closed
            assert response.status == 200 or (
                response.status == 503 and b"load balancer out of" in response.body
            ), response
        assert sum(1 for r in responses if r is not None and r.status == 200) > 0


@pytest.fixture(autouse=True)
def _enough_descriptors_here() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
