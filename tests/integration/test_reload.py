"""Seamless reload, as an operator does it: a `bascule run` process, `bascule reload`
and SIGHUP, real backends and an open-loop client (a fixed rate, new connections and
keep-alive) that must never see a failed request, a refused or a reset connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_cli import bascule, process, wait_until, write_config

from backends import Backend, ok_response
from client import Client, get, request
from harness import free_port

RATE = 200  # requests per second, half on new connections, half on keep-alive ones
KEEP_ALIVE_CLIENTS = 4
RELOADS = 20
GRACE = 5.0


def config_text(
    socket_path: Path,
    frontends: dict[str, int],
    servers: dict[str, tuple[int, int]],
    check: str = "",
    extra_global: str = "",
) -> str:
    """`frontends`: name -> port (all to backend app); `servers`: name -> (port, weight)."""
    lines = [
        f"global: {{grace: {GRACE:g}s, control_socket: {socket_path}{extra_global}}}",
        "frontends:",
    ]
    for name, port in frontends.items():
        lines += [f"  - name: {name}", f'    bind: "127.0.0.1:{port}"', "    default_backend: app"]
    lines += ["backends:", "  - name: app", "    servers:"]
    for name, (port, weight) in servers.items():
        lines.append(
            f"      - {{name: {name}, address: 127.0.0.1, port: {port}, weight: {weight}{check}}}"
        )
    return "\n".join(lines) + "\n"


async def reload_command(*args: str) -> tuple[int, str]:
    """`bascule reload ARGS` as a process, without blocking the test's load."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bascule",
        "reload",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def control(socket_path: Path, **message: object) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(json.dumps(message).encode() + b"\n")
    line = await reader.readline()
    writer.close()
    reply: dict[str, object] = json.loads(line)
    return reply


@dataclass
class Load:
    """Open-loop traffic to one port: RATE/2 new connections a second, and
    KEEP_ALIVE_CLIENTS connections sending RATE/2 requests a second between them."""

    port: int
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    servers: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def _answered(self, response: object, what: str) -> None:
        status = getattr(response, "status", None)
        if status != 200:
            self.failures.append(f"{what}: {status if response is not None else 'no answer'}")
            return
        body = getattr(response, "body", b"")
        self.servers[body.decode().strip()] += 1

    async def _one_new_connection(self) -> None:
        try:
            self._answered(await request(self.port, get("/")), "new connection")
        except OSError as exc:  # refused, reset
            self.failures.append(f"new connection: {exc!r}")

    async def new_connections(self) -> None:
        interval = 2 / RATE
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        while not self._stop.is_set():
            self.sent += 1
            task = asyncio.create_task(self._one_new_connection())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            # A fixed schedule, whatever the answers take (open loop).
            delay = start + self.sent * interval - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        await asyncio.gather(*tasks)

    async def keep_alive(self, offset: float) -> None:
        interval = 2 * KEEP_ALIVE_CLIENTS / RATE
        client: Client | None = None
        start = time.monotonic() + offset
        count = 0
        try:
            while not self._stop.is_set():
                count += 1
                if client is None:
                    client = await Client.connect(self.port)
                    self.reconnects += 1
                self.sent += 1
                try:
                    client.send(get("/"))
                    got = await client.read(1, timeout=10)
                except OSError as exc:
                    self.failures.append(f"keep-alive: {exc!r}")
                    got = []
                self._answered(got[0] if got else None, "keep-alive")
                if not got or got[0].header("connection") == b"close" or client.closed:
                    client.close()
                    client = None
                await asyncio.sleep(max(0.0, start + count * interval - time.monotonic()))
        finally:
            if client is not None:
                client.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        loops = [asyncio.create_task(self.new_connections())]
        loops += [asyncio.create_task(self.keep_alive(i / RATE)) for i in range(KEEP_ALIVE_CLIENTS)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*loops)


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    log: Path
    socket: Path

    def text(self) -> str:
        return self.log.read_text()


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, config: Path, port: int) -> AsyncIterator[Daemon]:
    log = tmp_path / "run.log"
    socket_path = tmp_path / "ctl" / "bascule.sock"
    argv = (sys.executable, "-m", "bascule", "run", "-c", str(config))
    async with process(*argv, log=log) as proc:
        assert await wait_until(port, open_=True, timeout=20), log.read_text()
        deadline = time.monotonic() + 10  # the control socket comes right after the ports
        while not socket_path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        yield Daemon(proc, log, socket_path)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), GRACE + 10) == 0, log.read_text()


async def backends(count: int) -> list[Backend]:
    return [await Backend(f"s{i + 1}").start() for i in range(count)]


async def served_by(port: int, count: int) -> set[str]:
    names = set()
    for _ in range(count):
        response = await request(port, get("/"))
        assert response is not None and response.status == 200
        names.add(response.body.decode().strip())
    return names


async def test_reloads_under_load_fail_no_request(tmp_path: Path) -> None:
    """20 reloads, each changing weights and the set of servers, under 200 req/s."""
    pool = await backends(4)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"

    def generation(i: int) -> str:
        # Every reload leaves one server out (a different one) and shifts the weights.
        servers = {
            b.name: (b.port, 1 + (i + n) % 3) for n, b in enumerate(pool) if n != i % len(pool)
        }
        return config_text(socket_path, {"web": port}, servers)

    path = write_config(tmp_path, generation(0))
    async with daemon(tmp_path, path, port) as lb:
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(socket_path.parent).st_mode) == 0o700
        load = Load(port)
        async with load.running():
            await asyncio.sleep(0.5)
            for i in range(1, RELOADS + 1):
                path.write_text(generation(i))
                code, out = await reload_command("--socket", str(socket_path))
                assert code == 0, out
                assert f"generation {i + 1}" in out
                assert "removed" in out and "added" in out, out
            await asyncio.sleep(0.5)
        status = await control(socket_path, command="status")
        left_out = pool[RELOADS % len(pool)].name
        assert left_out not in await served_by(port, 12)
        log = lb.text()
    print(
        f"\n{load.sent} requests during {RELOADS} reloads, {len(load.failures)} failed; "
        f"keep-alive connections made: {load.reconnects}; by server: {dict(load.servers)}"
    )
    assert not load.failures, load.failures[:10]
    assert load.sent > RATE * 2
    assert status["generation"] == RELOADS + 1
    assert log.count("reloaded") >= RELOADS
    assert "Traceback" not in log


BROKEN = """\
global: {{grace: 5s, control_socket: {socket}}}
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: ap
backends:
  - name: app
    servers:
      - {{name: s1, address: 127.0.0.1, port: 70000}}
"""


async def test_a_broken_file_is_refused_with_every_problem_and_changes_nothing(
    tmp_path: Path,
) -> None:
    (s1,) = await backends(1)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"
    path = write_config(tmp_path, config_text(socket_path, {"web": port}, {"s1": (s1.port, 1)}))
    broken = write_config(tmp_path, BROKEN.format(socket=socket_path, port=port), "broken.yaml")
    async with daemon(tmp_path, path, port) as lb:
        load = Load(port)
        async with load.running():
            # -c FILE: the socket is found in the (broken) file itself.
            code, out = await reload_command("-c", str(broken))
            assert code == 1, out
            assert f"{broken}:5: frontends[0].default_backend" in out, out
            assert f"{broken}:9: backends[0].servers[0].port" in out, out
            assert "generation 1 unchanged" in out
            await asyncio.sleep(0.5)
        assert not load.failures, load.failures[:10]
        assert load.servers == Counter({"s1": load.sent})
        # The next good reload works, and re-reads the file the daemon runs with.
        (s2,) = [await Backend("s2").start()]
        path.write_text(config_text(socket_path, {"web": port}, {"s2": (s2.port, 1)}))
        code, out = await reload_command("--socket", str(socket_path))
        assert code == 0, out
        assert "server app/s2 added" in out and "server app/s1 removed" in out
        assert await served_by(port, 5) == {"s2"}
        log = lb.text()
    assert "reload of" in log and "refused, 2 problems" in log
    assert "config.reload_failed" not in log or "Traceback" not in log


async def test_reload_adds_and_removes_frontends_and_refuses_a_port_in_use(
    tmp_path: Path,
) -> None:
    (s1,) = await backends(1)
    first, second = free_port(), free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"
    servers = {"s1": (s1.port, 1)}
    path = write_config(tmp_path, config_text(socket_path, {"web": first}, servers))
    async with daemon(tmp_path, path, first):
        # A new frontend on a port some other process holds: nothing changes.
        with contextlib.closing(__import__("socket").socket()) as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = squatter.getsockname()[1]
            busy = write_config(
                tmp_path, config_text(socket_path, {"api": taken}, servers), "busy.yaml"
            )
            code, out = await reload_command("-c", str(busy))
        assert code == 1, out
        assert f"frontend api: cannot listen on 127.0.0.1:{taken}" in out
        assert await served_by(first, 2) == {"s1"}

        moved = write_config(
            tmp_path, config_text(socket_path, {"api": second}, servers), "moved.yaml"
        )
        code, out = await reload_command("-c", str(moved))
        assert code == 0, out
        assert "frontend api added" in out and "frontend web removed" in out
        assert await served_by(second, 2) == {"s1"}
        assert await wait_until(first, open_=False, timeout=2)
        # -c FILE became the daemon's file: a plain reload re-reads moved.yaml.
        code, out = await reload_command("--socket", str(socket_path))
        assert code == 0 and "no change" in out, out


async def test_a_sighup_storm_ends_in_the_last_configuration(tmp_path: Path) -> None:
    pool = await backends(3)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"

    def only(backend: Backend) -> str:
        return config_text(socket_path, {"web": port}, {backend.name: (backend.port, 1)})

    path = write_config(tmp_path, only(pool[0]))
    async with daemon(tmp_path, path, port) as lb:
        load = Load(port)
        async with load.running():
            for i in range(20):
                path.write_text(only(pool[1 + i % 2]))
                lb.proc.send_signal(signal.SIGHUP)
                await asyncio.sleep(0.05)
            last = pool[1 + 19 % 2]
            # Every reload asked for is done once the daemon answers a status after it.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = await control(socket_path, command="status")
                if await served_by(port, 1) == {last.name} and status["generation"] != 1:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        assert await served_by(port, 6) == {last.name}
        assert lb.proc.returncode is None
        log = lb.text()
    reloads = log.count("reloaded ")
    print(
        f"\n20 SIGHUPs: {reloads} reloads done; {load.sent} requests, {len(load.failures)} failed"
    )
    assert 1 <= reloads <= 20
    assert "refused" not in log
    assert not load.failures, load.failures[:10]


async def test_an_unchanged_down_server_stays_down_across_a_reload(tmp_path: Path) -> None:
    (s1,) = await backends(1)
    dead = free_port()  # nothing listens there: s2's checks fail
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"
    check = ", check: {type: tcp, interval: 200ms, fall: 2, rise: 2}"

    def weights(w: int) -> str:
        return config_text(socket_path, {"web": port}, {"s1": (s1.port, w), "s2": (dead, 1)}, check)

    path = write_config(tmp_path, weights(1))
    async with daemon(tmp_path, path, port) as lb:
        deadline = time.monotonic() + 10
        while "app/s2 DOWN" not in lb.text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "app/s2 DOWN" in lb.text(), lb.text()
        path.write_text(weights(3))
        code, out = await reload_command("--socket", str(socket_path))
        assert code == 0, out
        assert "server app/s1 changed: weight 1 -> 3" in out
        assert "s2" not in out
        await asyncio.sleep(1.0)  # several check intervals
        assert await served_by(port, 10) == {"s1"}
        log = lb.text()
    after = log[log.index("reloaded") :]
    assert "app/s2" not in after, after  # no second DOWN (so no UP before it): no flap


def test_reload_without_a_daemon_exits_1_and_says_so(tmp_path: Path) -> None:
    socket_path = tmp_path / "nothing.sock"
    done = bascule("reload", "--socket", str(socket_path))
    assert done.returncode == 1
    assert f"no bascule daemon listening on {socket_path}: is it running?" in done.stderr
    assert "global.control_socket" in done.stderr


@pytest.mark.parametrize("live", [True, False])
async def test_pid_file_written_removed_and_a_live_one_refused(tmp_path: Path, live: bool) -> None:
    (s1,) = await backends(1)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"
    pid_file = tmp_path / "run" / "bascule.pid"
    text = config_text(
        socket_path, {"web": port}, {"s1": (s1.port, 1)}, extra_global=f", pid_file: {pid_file}"
    )
    path = write_config(tmp_path, text)
    if not live:
        pid_file.parent.mkdir()
        pid_file.write_text("999999\n")  # a stale file: no such process
    async with daemon(tmp_path, path, port) as lb:
        assert pid_file.read_text() == f"{lb.proc.pid}\n"
        if live:
            other = write_config(
                tmp_path,
                config_text(
                    tmp_path / "other.sock",
                    {"web": free_port()},
                    {"s1": (s1.port, 1)},
                    extra_global=f", pid_file: {pid_file}",
                ),
                "other.yaml",
            )
            done = await asyncio.to_thread(bascule, "run", "-c", str(other))
            assert done.returncode == 2, done.stderr
            assert f"pid file {pid_file} names bascule process {lb.proc.pid}" in done.stderr
            assert pid_file.read_text() == f"{lb.proc.pid}\n"
    assert not pid_file.exists()
    assert not socket_path.exists()


async def test_initial_state_changed_in_the_file_drains_and_restores_a_server(
    tmp_path: Path,
) -> None:
    s1, s2 = await backends(2)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"

    def with_s2(state: str) -> str:
        text = config_text(socket_path, {"web": port}, {"s1": (s1.port, 1), "s2": (s2.port, 1)})
        return text.replace(f"port: {s2.port}, weight: 1", f"port: {s2.port}, weight: 1, {state}")

    path = write_config(tmp_path, with_s2("initial_state: up"))
    async with daemon(tmp_path, path, port) as lb:
        assert await served_by(port, 6) == {"s1", "s2"}
        path.write_text(with_s2("initial_state: maint"))
        code, out = await reload_command("--socket", str(socket_path))
        assert code == 0 and "initial_state up -> maint" in out, out
        assert await served_by(port, 6) == {"s1"}
        path.write_text(with_s2("initial_state: up"))
        code, out = await reload_command("--socket", str(socket_path))
        assert code == 0, out
        assert await served_by(port, 6) == {"s1", "s2"}
        log = lb.text()
    assert "initial_state maint in the reloaded file" in log


async def test_a_request_in_flight_finishes_on_the_server_a_reload_removed(
    tmp_path: Path,
) -> None:
    arrived = asyncio.Event()

    async def slow(req: object, transport: asyncio.Transport) -> None:
        arrived.set()
        await asyncio.sleep(1.0)
        transport.write(ok_response(b"old\n"))

    old = await Backend("old", slow).start()
    (new,) = await backends(1)
    port = free_port()
    socket_path = tmp_path / "ctl" / "bascule.sock"
    path = write_config(tmp_path, config_text(socket_path, {"web": port}, {"old": (old.port, 1)}))
    async with daemon(tmp_path, path, port):
        client = await Client.connect(port)
        try:
            client.send(get("/"))
            await asyncio.wait_for(arrived.wait(), 5)
            path.write_text(config_text(socket_path, {"web": port}, {"s1": (new.port, 1)}))
            code, out = await reload_command("--socket", str(socket_path))
            assert code == 0 and "server app/old removed" in out, out
            assert await served_by(port, 3) == {"s1"}  # new connections: the new config
            (answer,) = await client.read(1, timeout=GRACE)
            assert answer.status == 200 and answer.body == b"old\n"
            assert answer.header("connection") == b"close"  # its next request: anew
            assert await client.wait_closed(timeout=2)
        finally:
            client.close()


def test_reload_naming_a_fifo_does_not_wait_on_it(tmp_path: Path) -> None:
    fifo = tmp_path / "bascule.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    # Without --socket, reload reads the file for global.control_socket first.
    done = bascule("reload", "-c", str(fifo), timeout=15.0)
    assert done.returncode == 1, done.stderr
