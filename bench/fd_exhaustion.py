"""File descriptor exhaustion: Bascule vs HAProxy under `ulimit -n 256`.

The scenario of the hardening review (issue 20): each load balancer (LB) runs with
RLIMIT_NOFILE 256 (soft and hard) in front of one healthy server, 220 client
connections are opened and left idle, then 500 requests are sent at once, each on a
connection of its own. Both LBs have their defaults otherwise (Bascule: max_connections
10000, timeouts.http_request 10s; HAProxy: maxconn 10000 in the frontend, `timeout
http-request 10s`), an active TCP check every 2 s and passive detection (Bascule's
default; HAProxy `observe layer4 error-limit 3 on-error mark-down`).

For each LB the table says what the 500 clients saw within --wait seconds: a 200, a
503 (and why), the connection closed without an answer, or nothing yet; and whether
the LB's log marked the server DOWN. Every process started here is stopped by PID.

Run:  .venv/bin/python bench/fd_exhaustion.py [--src DIR] [--wait 40]
(`--src DIR`: run Bascule from another source tree, e.g. an older checkout, for a
before/after comparison.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

LIMIT = 256
IDLE = 220
REQUESTS = 500
HAPROXY = "/usr/sbin/haproxy"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bascule_config(port: int, server_port: int) -> str:
    return f"""\
global: {{log_level: info}}
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
backends:
  - name: app
    servers:
      - {{name: s1, address: 127.0.0.1, port: {server_port}, check: {{type: tcp, interval: 2s}}}}
"""


def haproxy_config(port: int, server_port: int) -> str:
    return f"""\
global
    log stderr format short local0 info
defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
frontend web
    bind 127.0.0.1:{port}
    maxconn 10000
    default_backend app
backend app
    server s1 127.0.0.1:{server_port} check inter 2s observe layer4 error-limit 3 on-error mark-down
"""


async def serve_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The healthy server: 200 to every request, keep-alive."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    writer.close()


def low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@contextlib.asynccontextmanager
async def lb_process(argv: list[str], log: Path, env: dict[str, str]) -> AsyncIterator[None]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, preexec_fn=low_limit, env=env, cwd=REPO
        )
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        w.close()
        return
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


async def one_request(port: int, wait: float, start: float) -> tuple[str, float]:
    """What one client saw ("200", "503: <reason>", "closed", "no answer" or
    "refused") and when, in seconds since `start`."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused", time.monotonic() - start
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        async with asyncio.timeout(wait):
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            if status != "200":
                body = await reader.read(200)
                status = f"{status}: {body.decode(errors='replace').strip()[:70]}"
            return status, time.monotonic() - start
    except TimeoutError:
        return "no answer", time.monotonic() - start
    except (ConnectionError, asyncio.IncompleteReadError):
        return "closed", time.monotonic() - start
    finally:
        writer.close()


Seen = list[tuple[str, float]]


async def run_scenario(
    name: str, argv: list[str], config: str, port: int, wait: float, env: dict[str, str]
) -> tuple[Seen, str]:
    work = Path(tempfile.mkdtemp(prefix=f"fd-{name}-"))
    try:
        cfg = work / ("bascule.yaml" if name == "bascule" else "haproxy.cfg")
        cfg.write_text(config)
        log = work / "lb.log"
        async with lb_process([*argv, str(cfg)], log, env):
            await wait_listening(port)
            await asyncio.sleep(0.5)
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
            start = time.monotonic()
            try:
                seen = await asyncio.gather(
                    *(one_request(port, wait, start) for _ in range(REQUESTS))
                )
            finally:
                for sock in idle:
                    sock.close()
        return seen, log.read_text(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def server_marked_down(log: str) -> str:
    lines = [
        line for line in log.splitlines() if (" DOWN" in line or "ejected" in line) and "s1" in line
    ]
    return "yes: " + lines[0].split(": ", 1)[-1][:90] if lines else "no"


CHECKPOINTS = (5.0, 10.0, 15.0, 20.0, 30.0)


def print_table(results: dict[str, tuple[Seen, str]], wait: float) -> None:
    counts = {name: Counter(outcome for outcome, _ in seen) for name, (seen, _) in results.items()}
    outcomes = sorted({o for c in counts.values() for o in c})
    names = list(results)
    rows: list[tuple[str, list[int]]] = [
        (o, [counts[n].get(o, 0) for n in names]) for o in outcomes
    ]
    for at in [c for c in CHECKPOINTS if c < wait] + [wait]:
        answered = [sum(1 for o, t in results[n][0] if o[:1].isdigit() and t <= at) for n in names]
        rows.append((f"answered within {at:g}s", answered))
    width = max(len(label) for label, _ in rows)
    print(f"\n{IDLE} idle clients, then {REQUESTS} requests at once, ulimit -n {LIMIT}\n")
    print(f"{'':<{width}}  " + "  ".join(f"{n:>10}" for n in names))
    for label, values in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{v:>10}" for v in values))
    for n in names:
        print(f"server marked DOWN by {n}: {server_marked_down(results[n][1])}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, help="run Bascule from this source tree")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds a client waits")
    parser.add_argument("--only", choices=("bascule", "haproxy"))
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 720+ client sockets here
    server = await asyncio.start_server(serve_ok, "127.0.0.1", 0)
    server_port = server.sockets[0].getsockname()[1]
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    lbs: dict[str, tuple[list[str], Callable[[int, int], str]]] = {
        "bascule": ([sys.executable, "-m", "bascule", "run", "-c"], bascule_config),
        "haproxy": ([HAPROXY, "-db", "-f"], haproxy_config),
    }
    results = {}
    for name, (argv, make_config) in lbs.items():
        if args.only and name != args.only:
            continue
        port = free_port()
        config = make_config(port, server_port)
        results[name] = await run_scenario(name, argv, config, port, args.wait, env)
    server.close()
    print_table(results, args.wait)


if __name__ == "__main__":
    asyncio.run(main())
