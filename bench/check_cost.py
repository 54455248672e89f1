"""Benchmark: CPU cost of active health checks (target: 1,000 servers every second < 10% of a core).

For each check type (`tcp`, `http`) it builds the real control plane of `bascule run`
(one `BackendController` per backend: health runners, state machines, events) for N
servers (default 1,000 in 50 backends, checked every second), lets it run a measured
window (default 10 s, after a 2 s warm-up) in this process on uvloop, and prints one
row per type: checks/s, CPU as % of one core (user and system), p50/p99 check
duration, failed checks, and the endpoints' own CPU for reference.

    .venv/bin/python bench/check_cost.py [--servers 1000] [--types tcp,http]
                                         [--seconds 10] [--daemons]

`--daemons` adds what a user would see: a real `bascule run` and a real HAProxy
(`nbthread 1`, `default-server check inter 1s`), each given the same servers against
the same endpoints, with nothing else to do; their CPU over the window is read from
/proc. The target is judged on the `bascule run` rows.

How the endpoints are built: a separate process (so its user-space CPU is not
counted) runs a tiny uvloop HTTP responder on `--ports` loopback ports (default
20); server i points at port i % ports. So 1,000 "servers" are 1,000 check specs
and 1,000 connections a second, but only 20 listening sockets: what is measured is
the checker's side, which does not care whether two servers share a port.

CPU % is user and system time during the window divided by the window's wall time:
100% = one core busy. On loopback the kernel runs much of the *server's* side of
each TCP handshake and teardown inside the checker's own system calls, so "system"
overstates what the checker would pay against remote servers; under the table the
script prints the floor for this machine: the system time of a bare blocking
connect + reset close. It is a script, not a test: numbers depend on the machine and
its load (the endpoints compete for the same CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import uvloop

from bascule.app import App
from bascule.config import load_config_text
from bascule.demo.run import free_port
from bascule.health.results import CheckResult
from bascule.health.runner import ResultSink

HOST = "127.0.0.1"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


# -- endpoints (run in a child process) ---------------------------------------------------


class _Endpoint(asyncio.Protocol):
    """Answers one request with 200 "ok" and closes; a bare connect is just closed
    by the checker."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\r\n\r\n"):  # the probe sends its whole request at once
            self.transport.write(RESPONSE)
            self.transport.close()


async def _serve(ports: int) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Endpoint, HOST, 0, backlog=4096) for _ in range(ports)]
    numbers = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps(numbers), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent goes away


def start_endpoints(ports: int) -> tuple[subprocess.Popen[str], list[int]]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


# -- the checker ----------------------------------------------------------------------------


@dataclass
class Tally:
    measuring: bool = False
    durations: list[float] = field(default_factory=list)
    failed: int = 0
    first_failure: str = ""

    def record(self, result: CheckResult) -> None:
        if not self.measuring:
            return
        self.durations.append(result.duration)
        if not result.ok:
            self.failed += 1
            self.first_failure = self.first_failure or result.reason


def tallied(sink: ResultSink, tally: Tally) -> ResultSink:
    def record_then_apply(key: str, result: CheckResult) -> None:
        tally.record(result)
        sink(key, result)

    return record_then_apply


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds used by this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of another process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    """One line of the table; CPU figures are % of one core over the window."""

    kind: str
    servers: int
    checks_per_second: float
    user_percent: float
    system_percent: float
    endpoints_percent: float
    p50_ms: float
    p99_ms: float
    failed: int
    first_failure: str


async def measure(kind: str, args: argparse.Namespace, ports: Sequence[int], child: int) -> Row:
    """The control plane of `bascule run` (no listener) checking every server."""
    config = load_config_text(bascule_config(kind, args, ports), "<check_cost>")
    app = App(config)
    await app.start()
    tally = Tally()
    for controller in app.controllers.values():
        controller.runner.sink = tallied(controller.runner.sink, tally)
    await asyncio.sleep(args.warmup)
    tally.measuring = True
    user_start, system_start = cpu_seconds()
    endpoints_start, wall_start = process_cpu_seconds(child), time.monotonic()
    await asyncio.sleep(args.seconds)
    user_end, system_end = cpu_seconds()
    endpoints = process_cpu_seconds(child) - endpoints_start
    wall = time.monotonic() - wall_start
    user, system = user_end - user_start, system_end - system_start
    tally.measuring = False
    await app.stop(grace=0)
    durations = sorted(tally.durations) or [0.0]
    return Row(
        kind=f"{kind}: in process",
        servers=args.servers,
        checks_per_second=len(tally.durations) / wall,
        user_percent=100 * user / wall,
        system_percent=100 * system / wall,
        endpoints_percent=100 * endpoints / wall,
        p50_ms=1000 * statistics.median(durations),
        p99_ms=1000 * durations[min(len(durations) - 1, int(0.99 * len(durations)))],
        failed=tally.failed,
        first_failure=tally.first_failure,
    )


def kernel_floor(port: int, connections: int = 2000) -> float:
    """System-time microseconds of one blocking loopback connect + reset close: the
    kernel's share of a TCP check that no user-space code can avoid here."""
    linger_zero = struct.pack("ii", 1, 0)
    system_start = cpu_seconds()[1]
    for _ in range(connections):
        with socket.create_connection((HOST, port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
    return 1e6 * (cpu_seconds()[1] - system_start) / connections


def print_table(rows: Sequence[Row], args: argparse.Namespace, floor_us: float) -> None:
    print(
        f"\nhealth-check cost: {args.servers} servers ({args.backends} backends), "
        f"interval {args.interval:g}s, {args.seconds:g}s measured, "
        f"{args.ports} endpoint ports, uvloop\n"
    )
    header = (
        "check type",
        "servers",
        "checks/s",
        "CPU % of one core",
        "(user",
        "system)",
        "p50 ms",
        "p99 ms",
        "failed",
        "endpoints CPU %",
    )
    print(" | ".join(header))
    print(" | ".join("-" * len(title) for title in header))
    for row in rows:
        cells = (
            row.kind,
            str(row.servers),
            f"{row.checks_per_second:.0f}",
            f"{row.user_percent + row.system_percent:.1f}",
            f"{row.user_percent:.1f}",
            f"{row.system_percent:.1f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            str(row.failed),
            f"{row.endpoints_percent:.1f}",
        )
        print(" | ".join(cell.ljust(len(title)) for cell, title in zip(cells, header, strict=True)))
    for row in rows:
        if row.failed:
            print(f"\n{row.kind}: first failure: {row.first_failure}")
    print(
        f"\nkernel floor on this machine: a blocking loopback connect + close costs "
        f"{floor_us:.0f} us of system time, {floor_us / 10:.1f}% of a core at 1,000/s"
    )
    ours = [row for row in rows if "bascule run" in row.kind] or [
        row for row in rows if "haproxy" not in row.kind
    ]
    met = all(row.user_percent + row.system_percent < 10 for row in ours)
    judged = "bascule run" if "bascule run" in ours[0].kind else "in process"
    print(f"\ntarget (< 10% of one core for every type, {judged}): {'met' if met else 'NOT met'}")


# -- whole daemons ---------------------------------------------------------------------------


def bascule_config(kind: str, args: argparse.Namespace, ports: Sequence[int]) -> str:
    interval = f"{args.interval:g}s"
    check = f"{{type: tcp, interval: {interval}, timeout: 1s}}"
    if kind == "http":
        check = f"{{type: http, interval: {interval}, timeout: 1s, http: {{path: /health}}}}"
    lines = [
        "global: {log_level: warning}",
        "frontends:",
        f'  - {{name: f, bind: "{HOST}:{free_port()}", default_backend: b0}}',
        "backends:",
    ]
    for backend in range(args.backends):
        lines += [f"  - name: b{backend}", f"    check: {check}", "    servers:"]
        for server in range(args.servers // args.backends):
            port = ports[(backend * 1000 + server) % len(ports)]
            lines.append(f"      - {{name: s{server}, address: {HOST}, port: {port}}}")
    return "\n".join(lines) + "\n"


def haproxy_config(kind: str, args: argparse.Namespace, ports: Sequence[int]) -> str:
    lines = [
        "global",
        "    nbthread 1",
        "defaults",
        f"    mode {'http' if kind == 'http' else 'tcp'}",
        "    timeout connect 1s",
        "    timeout client 5s",
        "    timeout server 5s",
        "    timeout check 1s",
        "frontend f",  # HAProxy refuses to run without a listener
        f"    bind {HOST}:{free_port()}",
        "    default_backend b0",
    ]
    for backend in range(args.backends):
        lines += [f"backend b{backend}", f"    default-server check inter {args.interval:g}s"]
        if kind == "http":
            lines.append("    option httpchk GET /health")
        for server in range(args.servers // args.backends):
            port = ports[(backend * 1000 + server) % len(ports)]
            lines.append(f"    server s{server} {HOST}:{port}")
    return "\n".join(lines) + "\n"


async def measure_daemon(
    daemon: str, kind: str, args: argparse.Namespace, ports: Sequence[int], child: int
) -> Row:
    """CPU of a real `bascule run` or HAProxy checking `args.servers` servers."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as config:
        maker = bascule_config if daemon == "bascule" else haproxy_config
        config.write(maker(kind, args, ports))
        config.flush()
        argv = (
            [sys.executable, "-m", "bascule", "run", "-c", config.name]
            if daemon == "bascule"
            else ["haproxy", "-db", "-f", config.name]
        )
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        try:
            await asyncio.sleep(args.warmup + 2)  # start-up, then the first spread round
            if process.poll() is not None:
                raise SystemExit(f"{daemon} exited with {process.returncode} at start")
            start, endpoints_start = process_cpu_seconds(process.pid), process_cpu_seconds(child)
            wall_start = time.monotonic()
            await asyncio.sleep(args.seconds)
            used = process_cpu_seconds(process.pid) - start
            endpoints = process_cpu_seconds(child) - endpoints_start
            wall = time.monotonic() - wall_start
        finally:
            process.terminate()
            process.wait()
    return Row(
        kind=f"{kind}: {'bascule run' if daemon == 'bascule' else 'haproxy'}",
        servers=args.servers,
        checks_per_second=args.servers / args.interval,  # configured, not counted
        user_percent=100 * used / wall,  # /proc gives user+system together here
        system_percent=0.0,
        endpoints_percent=100 * endpoints / wall,
        p50_ms=0.0,
        p99_ms=0.0,
        failed=0,
        first_failure="",
    )


async def run(args: argparse.Namespace) -> None:
    child, ports = start_endpoints(args.ports)
    try:
        rows = [await measure(kind, args, ports, child.pid) for kind in args.types.split(",")]
        if args.daemons:
            for kind in args.types.split(","):
                for daemon in ("bascule", "haproxy"):
                    rows.append(await measure_daemon(daemon, kind, args, ports, child.pid))
        floor_us = kernel_floor(ports[0])
    finally:
        child.terminate()
        child.wait()
    print_table(rows, args, floor_us)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--backends", type=int, default=50, help="only labels the table")
    parser.add_argument("--types", default="tcp,http", help="comma-separated: tcp,http")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--ports", type=int, default=20)
    parser.add_argument(
        "--daemons", action="store_true", help="also measure bascule run and haproxy whole"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # endpoints child
    return parser.parse_args(argv)


def main(argv: Sequence[str] = sys.argv[1:]) -> None:
    args = parse_args(argv)
    if args.serve:
        uvloop.run(_serve(args.serve))
        return
    for kind in args.types.split(","):
        if kind not in ("tcp", "http"):
            raise SystemExit(f"--types: unknown check type {kind!r}; use tcp or http")
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
