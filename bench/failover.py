"""Failover benchmark: kill a backend under steady open-loop traffic, Bascule vs HAProxy.

This script owns one failover scenario and runs it, identically, against each load
balancer (LB) under test. For each LB it starts three demo backends (s1, s2, s3) and the
LB in a temp dir, sends open-loop HTTP traffic at a fixed rate, SIGKILLs s2 part-way,
restarts it on the same port later, and reports what the clients saw (failed requests,
latency) next to what the LB said (when it marked s2 DOWN, from its own log). Every
process it starts is stopped by PID in a ``finally`` block, also on Ctrl-C or SIGTERM.
Process handling, free ports and CPU pinning are shared with proxy_bench.py.

Run it with:  .venv/bin/python bench/failover.py [--passive-only] [--repeat N] [--json out.json]
See the "Failover" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from proxy_bench import (
    BenchError,
    ManagedProcess,
    Pinning,
    PortAllocator,
    ProcessRegistry,
    choose_pinning,
    default_bascule_command,
    log,
    raise_keyboard_interrupt,
    split_choice,
    tail,
    tool_version,
    wait_until_listening,
    work_directory,
)

LOOPBACK = "127.0.0.1"
LB_NAMES = ("bascule", "haproxy")
BACKEND_BLOCK = "be"
SERVER_NAMES = ("s1", "s2", "s3")
VICTIM = "s2"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
REQUEST_METHOD = "GET"
REQUEST = (
    f"{REQUEST_METHOD} / HTTP/1.1\r\nHost: failover.bench\r\n"
    "User-Agent: bascule-failover-bench\r\n\r\n"
).encode()
# How often the LB's log file is read for new lines: the resolution of "detection".
LOG_POLL_S = 0.005
MAX_LINE_CHARS = 200
TARGET = "Target: Bascule loses no idempotent request and detects no later than HAProxy"

CheckType = Literal["tcp", "http"]

# Both LBs mark a server DOWN/UP with a line naming it; HAProxy says "Server be/s2 is DOWN",
# Bascule "server be/s2 DOWN: <reason>". Other lines naming the server (retries) must not match.
DOWN_LINE = re.compile(rf"\bserver {BACKEND_BLOCK}/{VICTIM}(?: is)? DOWN\b", re.IGNORECASE)
UP_LINE = re.compile(rf"\bserver {BACKEND_BLOCK}/{VICTIM}(?: is)? UP\b", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# The scenario and its results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """When things happen and how the clients behave; identical for every LB."""

    rate: float
    duration_s: float
    kill_at_s: float
    restart_at_s: float
    request_timeout_s: float
    new_connection_every: int
    keepalive_pool: int
    # Each round, the kill and the restart move later by one random offset in [0, jitter_s)
    # (the same for every LB of the round), so repeats meet the check cycle at new phases.
    jitter_s: float = 0.0

    def shifted(self, offset_s: float) -> Scenario:
        return replace(
            self, kill_at_s=self.kill_at_s + offset_s, restart_at_s=self.restart_at_s + offset_s
        )


@dataclass(frozen=True)
class LbSettings:
    """How the LBs are configured: the check both use, and Bascule-only adjustments."""

    check: CheckType
    passive_only: bool
    bascule_extra: Mapping[str, Any]

    def describe(self, lb: str) -> str:
        if lb == "bascule" and self.passive_only:
            return "passive only"
        return f"{self.check} check"


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """One request as the client saw it; times are time.monotonic()."""

    sent_at: float
    latency_s: float
    status: int  # 0 when no HTTP response arrived
    server: str  # X-Server of the answer, "" when none
    method: str
    error: str = ""

    @property
    def failed(self) -> bool:
        return not 200 <= self.status < 300

    @property
    def answered_at(self) -> float:
        return self.sent_at + self.latency_s

    @property
    def failure_reason(self) -> str:
        return self.error or f"HTTP {self.status}"


@dataclass
class Marks:
    """When the script acted on s2 (time.monotonic()); None when it did not get that far."""

    killed_at: float | None = None
    restarted_at: float | None = None
    listening_at: float | None = None


@dataclass
class FailoverRow:
    """One run of the scenario against one LB: the row of the table."""

    lb: str
    round: int
    checks: str
    shift_s: float = 0.0  # how much later than scheduled s2 was killed and restarted
    sent: int = 0
    failed: int = 0
    failed_idempotent: int = 0
    detection_s: float | None = None  # kill -> LB logged s2 DOWN
    return_s: float | None = None  # restart -> first response answered by s2
    marked_up_s: float | None = None  # restart -> LB logged s2 UP
    backend_listening_s: float | None = None  # restart -> s2 accepts connections again
    last_failure_s: float | None = None  # kill -> send time of the last failed request
    down_line: str = ""  # the LB's log line that marked s2 DOWN
    up_line: str = ""  # the LB's log line that marked s2 UP again
    outage_p99_ms: float | None = None  # requests sent between kill and restart
    max_latency_ms: float | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)
    failure: str | None = None


# ---------------------------------------------------------------------------------------
# Open-loop HTTP client
# ---------------------------------------------------------------------------------------

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class OpenLoopClient:
    """Sends GET / at a fixed rate, whatever happened to earlier requests (open loop).

    A closed-loop client would slow down exactly when the LB stalls and so hide the stall.
    Every `new_connection_every`-th request opens a new connection; the others reuse an
    idle kept-alive one (oldest first, so every pooled connection keeps being used). At
    most `keepalive_pool` idle connections are kept; a new connection not needed after its
    request is closed, like a short-lived client. Nothing is retried: a kept-alive
    connection the LB closes under a request is a failed request, as the client saw it.
    """

    def __init__(self, port: int, scenario: Scenario) -> None:
        self._port = port
        self._scenario = scenario
        self._idle: collections.deque[Connection] = collections.deque()
        self.outcomes: list[RequestOutcome] = []

    async def run(self, start: float) -> None:
        """Send rate x duration requests on schedule from `start`, then wait for answers."""
        scenario = self._scenario
        in_flight: set[asyncio.Task[None]] = set()
        for n in range(round(scenario.rate * scenario.duration_s)):
            delay = start + n / scenario.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(fresh=n % scenario.new_connection_every == 0))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=scenario.request_timeout_s + 1)
        while self._idle:
            self._idle.popleft()[1].close()

    async def _one(self, fresh: bool) -> None:
        sent_at = time.monotonic()
        status, server, error = 0, "", ""
        try:
            async with asyncio.timeout(self._scenario.request_timeout_s):
                status, server = await self._exchange(fresh)
        except TimeoutError:
            error = f"timeout ({self._scenario.request_timeout_s:g}s)"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            error = describe_error(exc)
        latency = time.monotonic() - sent_at
        self.outcomes.append(
            RequestOutcome(sent_at, latency, status, server, REQUEST_METHOD, error)
        )

    async def _exchange(self, fresh: bool) -> tuple[int, str]:
        if fresh or not self._idle:
            reader, writer = await asyncio.open_connection(LOOPBACK, self._port)
        else:
            reader, writer = self._idle.popleft()
        try:
            writer.write(REQUEST)
            status, headers = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
            reusable = await read_body(reader, headers)
        except BaseException:
            # Also on cancellation by the timeout: a half-read connection is never reused.
            writer.close()
            raise
        if reusable and len(self._idle) < self._scenario.keepalive_pool:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, headers.get("x-server", "")


def parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.x response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bool:
    """Read the body; True when the connection may carry another request."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ValueError("chunked response: this client only reads Content-Length bodies")
    length = headers.get("content-length")
    if length is None:
        await reader.read()  # close-delimited body
        return False
    if int(length):
        await reader.readexactly(int(length))
    return headers.get("connection", "").lower() != "close"


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before the response ended"
    return f"{type(exc).__name__}: {exc}"[:120]


# ---------------------------------------------------------------------------------------
# The LB's own log: when did it mark s2 DOWN and UP?
# ---------------------------------------------------------------------------------------


class LogWatcher:
    """Reads the LB's output file as it grows and stamps each line with its arrival time.

    HAProxy's raw log format has no timestamp and Bascule's has only milliseconds of wall
    clock, so both are timed the same way: when the line shows up in the file.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._partial = b""
        self.lines: list[tuple[float, str]] = []

    async def follow(self, stop: asyncio.Event) -> None:
        with self._path.open("rb") as stream:
            while not stop.is_set():
                self._take(stream.read())
                await asyncio.sleep(LOG_POLL_S)
            self._take(stream.read())

    def _take(self, data: bytes) -> None:
        if not data:
            return
        arrived = time.monotonic()
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend((arrived, line.decode(errors="replace")) for line in complete)

    def first(self, pattern: re.Pattern[str], after: float | None) -> tuple[float, str] | None:
        """The first line matching `pattern` that arrived at or after `after`, with its time."""
        if after is None:
            return None
        matches = ((t, line) for t, line in self.lines if t >= after and pattern.search(line))
        return next(matches, None)


# ---------------------------------------------------------------------------------------
# Backends and load balancers
# ---------------------------------------------------------------------------------------


class BackendSet:
    """The three demo backends of one run; any of them can be killed and restarted."""

    def __init__(
        self, instance_dir: Path, registry: ProcessRegistry, ports: PortAllocator, pin: list[str]
    ) -> None:
        self._dir = instance_dir
        self._registry = registry
        self._pin = pin
        self.ports = {name: ports.take() for name in SERVER_NAMES}
        self._processes: dict[str, ManagedProcess] = {}
        self._starts = collections.Counter[str]()

    def start_all(self, timeout_s: float) -> None:
        for name in SERVER_NAMES:
            self.start(name)
        for name in SERVER_NAMES:
            try:
                wait_until_listening(self._processes[name], self.ports[name], timeout_s)
            except BenchError as exc:
                raise BenchError(f"backend {name}: {exc}") from exc

    def start(self, name: str) -> None:
        self._starts[name] += 1
        # The module is run by the interpreter running this script: use the venv's python.
        argv = [sys.executable, "-m", "bascule.demo.backend", "--name", name]
        argv += ["--port", str(self.ports[name])]
        log_path = self._dir / f"backend-{name}-{self._starts[name]}.log"
        self._processes[name] = self._registry.start(
            f"backend {name}", [*self._pin, *argv], log_path, self._dir
        )

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: no graceful close, established connections get resets."""
        process = self._processes.pop(name)
        process.popen.kill()
        process.popen.wait()
        self._registry.stop(process)


def haproxy_config(port: int, backends: Mapping[str, int], settings: LbSettings) -> str:
    """HAProxy as its docs recommend for failover: checks, retries, redispatch."""
    servers = "".join(f"    server {n} {LOOPBACK}:{p}\n" for n, p in backends.items())
    httpchk = "    option httpchk GET /\n" if settings.check == "http" else ""
    return (
        "global\n"
        "    nbthread 1\n"
        "    maxconn 4096\n"
        "    log stderr format raw local0 info\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 1s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "    timeout http-keep-alive 30s\n"
        "    retries 3\n"
        "    option redispatch\n"
        "    option http-keep-alive\n"
        "    http-reuse safe\n"
        "    default-server check inter 1s fall 3 rise 2\n"
        "frontend fe\n"
        f"    bind {LOOPBACK}:{port}\n"
        f"    default_backend {BACKEND_BLOCK}\n"
        f"backend {BACKEND_BLOCK}\n"
        # Only the backend logs: server state changes, not one line per request.
        "    log global\n"
        "    balance roundrobin\n"
        f"{httpchk}"
        f"{servers}"
    )


def bascule_config(port: int, backends: Mapping[str, int], settings: LbSettings) -> dict[str, Any]:
    """Bascule configured like the HAProxy above (check block unless passive only)."""
    backend: dict[str, Any] = {
        "name": BACKEND_BLOCK,
        "algorithm": "round_robin",
        "retries": 3,
        "timeouts": {"connect": "1s", "server": "30s"},
        "passive": {"max_fails": 3},
        "servers": [{"name": n, "address": LOOPBACK, "port": p} for n, p in backends.items()],
    }
    if not settings.passive_only:
        check: dict[str, Any] = {
            "type": settings.check,
            "interval": "1s",
            "fall": 3,
            "rise": 2,
            "timeout": "1s",
        }
        if settings.check == "http":
            check["http"] = {"method": "GET", "path": "/"}
        backend["check"] = check
    return {
        # info: server UP events are logged at info level.
        "global": {"grace": "1s", "log_level": "info"},
        "frontends": [
            {
                "name": "fe",
                "bind": f"{LOOPBACK}:{port}",
                "mode": "http",
                "default_backend": BACKEND_BLOCK,
            }
        ],
        "backends": [deep_merge(backend, settings.bascule_extra)],
    }


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` on top; nested mappings are merged, anything else replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_lb(
    lb: str, instance_dir: Path, port: int, backends: Mapping[str, int], ctx: RunContext
) -> list[str]:
    """Write the LB's config into its instance dir; return the argv that runs it."""
    if lb == "haproxy":
        conf = instance_dir / "haproxy.cfg"
        conf.write_text(haproxy_config(port, backends, ctx.settings))
        # -db: foreground, one process, so our PID is the proxy and stderr is its log.
        return ["haproxy", "-db", "-f", str(conf)]
    conf = instance_dir / "bascule.yaml"
    document = bascule_config(port, backends, ctx.settings)
    conf.write_text(yaml.safe_dump(document, sort_keys=False))
    return [ctx.bascule, "run", "-c", str(conf)]


def start_lb(
    lb: str, instance_dir: Path, backends: Mapping[str, int], ctx: RunContext
) -> tuple[ManagedProcess, int]:
    port = ctx.ports.take()
    argv = write_lb(lb, instance_dir, port, backends, ctx)
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise BenchError(f"failed to start: {argv[0]} not found (install it or put it on PATH)")
    process = ctx.registry.start(
        lb, [*ctx.pinning.for_lb, *argv], instance_dir / "output.log", instance_dir
    )
    try:
        wait_until_listening(process, port, ctx.start_timeout_s)
    except BenchError as exc:
        # Bascule rejecting a config block it does not know yet lands here, with its stderr.
        raise BenchError(f"failed to start: {tail(process.log_path)}") from exc
    return process, port


def check_every_server_answers(port: int, timeout_s: float) -> None:
    """Before the clock starts, each backend must answer through the LB with X-Server."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    last_problem = "no request sent"
    while time.monotonic() < deadline and seen != set(SERVER_NAMES):
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            seen.add(response.getheader("X-Server", ""))
            last_problem = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last_problem = repr(exc)
            time.sleep(0.05)
        finally:
            connection.close()
    missing = sorted(set(SERVER_NAMES) - seen)
    if missing:
        raise BenchError(
            f"sanity check failed: no answer from {', '.join(missing)} through the LB within "
            f"{timeout_s:g}s (X-Server seen: {sorted(seen)}; last: {last_problem})"
        )


# ---------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """Everything the runs share."""

    workdir: Path
    registry: ProcessRegistry
    ports: PortAllocator
    pinning: Pinning
    scenario: Scenario
    settings: LbSettings
    bascule: str
    start_timeout_s: float


async def drive(
    scenario: Scenario, lb_port: int, backends: BackendSet, watcher: LogWatcher
) -> tuple[list[RequestOutcome], Marks]:
    """Traffic for the whole scenario, with s2 killed and restarted on schedule."""
    client = OpenLoopClient(lb_port, scenario)
    marks = Marks()
    stop_watching = asyncio.Event()
    watching = asyncio.create_task(watcher.follow(stop_watching))
    start = time.monotonic()
    chaos = asyncio.create_task(kill_and_restart(scenario, start, backends, marks))
    try:
        await client.run(start)
        await chaos
        # Give the LB a moment to log what it decided during the last requests.
        await asyncio.sleep(0.2)
    finally:
        if not chaos.done():
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
        stop_watching.set()
        await watching
    return client.outcomes, marks


async def kill_and_restart(
    scenario: Scenario, start: float, backends: BackendSet, marks: Marks
) -> None:
    await asyncio.sleep(max(0.0, start + scenario.kill_at_s - time.monotonic()))
    marks.killed_at = time.monotonic()
    backends.kill(VICTIM)
    await asyncio.sleep(max(0.0, start + scenario.restart_at_s - time.monotonic()))
    marks.restarted_at = time.monotonic()
    backends.start(VICTIM)
    marks.listening_at = await wait_listening(backends.ports[VICTIM], timeout_s=5.0)


async def wait_listening(port: int, timeout_s: float) -> float | None:
    """When the port first accepts a connection (polled every 10 ms), or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _reader, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return time.monotonic()
    return None


def run_once(lb: str, round_no: int, shift_s: float, ctx: RunContext) -> FailoverRow:
    row = FailoverRow(lb=lb, round=round_no, checks=ctx.settings.describe(lb), shift_s=shift_s)
    instance_dir = ctx.workdir / f"{lb}-{round_no}"
    instance_dir.mkdir()
    try:
        backends = BackendSet(instance_dir, ctx.registry, ctx.ports, ctx.pinning.for_load)
        backends.start_all(ctx.start_timeout_s)
        process, port = start_lb(lb, instance_dir, backends.ports, ctx)
        check_every_server_answers(port, timeout_s=5.0)
        watcher = LogWatcher(process.log_path)
        outcomes, marks = asyncio.run(drive(ctx.scenario.shifted(shift_s), port, backends, watcher))
        if not process.is_running():
            raise BenchError(f"exited during the run: {process.output_tail()}")
        fill_row(row, outcomes, marks, watcher)
    except BenchError as exc:
        row.failure = str(exc)
    finally:
        ctx.registry.stop_all()
    return row


# ---------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------


def fill_row(
    row: FailoverRow, outcomes: Sequence[RequestOutcome], marks: Marks, watcher: LogWatcher
) -> None:
    failures = [o for o in outcomes if o.failed]
    row.sent = len(outcomes)
    row.failed = len(failures)
    row.failed_idempotent = sum(1 for o in failures if o.method in IDEMPOTENT_METHODS)
    row.failure_reasons = dict(collections.Counter(o.failure_reason for o in failures))
    down = watcher.first(DOWN_LINE, marks.killed_at)
    up = watcher.first(UP_LINE, marks.restarted_at)
    row.detection_s = since(marks.killed_at, down[0] if down else None)
    row.marked_up_s = since(marks.restarted_at, up[0] if up else None)
    # The LB's own words: they say whether a check, live traffic or a timer decided.
    row.down_line = down[1][:MAX_LINE_CHARS] if down else ""
    row.up_line = up[1][:MAX_LINE_CHARS] if up else ""
    row.backend_listening_s = since(marks.restarted_at, marks.listening_at)
    row.return_s = since(marks.restarted_at, first_answer_by_victim(outcomes, marks.restarted_at))
    row.last_failure_s = since(marks.killed_at, max((o.sent_at for o in failures), default=None))
    if marks.killed_at is not None and marks.restarted_at is not None:
        window = [o for o in outcomes if marks.killed_at <= o.sent_at < marks.restarted_at]
        row.outage_p99_ms = percentile_ms([o.latency_s for o in window], 99)
    row.max_latency_ms = percentile_ms([o.latency_s for o in outcomes], 100)


def since(origin: float | None, moment: float | None) -> float | None:
    if origin is None or moment is None:
        return None
    return moment - origin


def first_answer_by_victim(outcomes: Sequence[RequestOutcome], after: float | None) -> float | None:
    """When the first response from the restarted s2 arrived at the client."""
    if after is None:
        return None
    answered = (o.answered_at for o in outcomes if o.server == VICTIM and o.answered_at >= after)
    return min(answered, default=None)


def percentile_ms(latencies_s: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile, in milliseconds; None for no samples."""
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1] * 1000


def target_verdicts(rows: Sequence[FailoverRow]) -> list[str]:
    """The target line, then whether Bascule met each half of it in this run."""
    bascule = [r for r in rows if r.lb == "bascule" and r.failure is None]
    haproxy = [r for r in rows if r.lb == "haproxy" and r.failure is None]
    if not bascule:
        return [TARGET, "  n/a: no Bascule run completed"]
    lost = sum(r.failed_idempotent for r in bascule)
    lines = [
        TARGET,
        f"  idempotent requests lost by Bascule: {lost} — {'met' if lost == 0 else 'MISSED'}",
    ]
    ours = median_or_none([r.detection_s for r in bascule])
    theirs = median_or_none([r.detection_s for r in haproxy])
    if not haproxy:
        lines.append("  detection: n/a (no HAProxy run completed)")
    elif ours is None or theirs is None:
        who = "Bascule" if ours is None else "HAProxy"
        lines.append(f"  detection: n/a ({who} never logged {BACKEND_BLOCK}/{VICTIM} DOWN)")
    else:
        verdict = "met" if ours <= theirs else "MISSED"
        lines.append(
            f"  detection (median): Bascule {ours:.3f} s vs HAProxy {theirs:.3f} s — {verdict}"
        )
    return lines


def median_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------

COLUMNS = (
    "lb",
    "checks",
    "sent",
    "failed",
    "idempotent\nfailed",
    "detection\n(kill→DOWN)",
    "return\n(restart→s2)",
    "p99 during\noutage",
    "max\nlatency",
)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def table_rows(rows: Sequence[FailoverRow], repeat: int) -> list[list[str]]:
    cells = []
    for r in rows:
        name = r.lb if repeat == 1 else f"{r.lb} #{r.round}"
        if r.failure is not None:
            cells.append([name, r.checks, "failed", *["—"] * (len(COLUMNS) - 3)])
            continue
        cells.append(
            [
                name,
                r.checks,
                str(r.sent),
                str(r.failed),
                str(r.failed_idempotent),
                _fmt(r.detection_s, ".3f", " s"),
                _fmt(r.return_s, ".3f", " s"),
                _fmt(r.outage_p99_ms, ".1f", " ms"),
                _fmt(r.max_latency_ms, ".1f", " ms"),
            ]
        )
    return cells


def print_table(rows: Sequence[FailoverRow], title: str, repeat: int) -> None:
    cells = table_rows(rows, repeat)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        headers = [c.replace("\n", " ") for c in COLUMNS]
        widths = [max(len(r[i]) for r in [headers, *cells]) for i in range(len(headers))]
        print(title)
        for line in [headers, *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index < 2 else "right")
    for line, row in zip(cells, rows, strict=True):
        table.add_row(*line, style="red" if row.failure else None)
    console = Console()
    if not console.is_terminal:
        # Piped or redirected: rich would assume 80 columns and fold every cell.
        console = Console(width=120)
    console.print(table)


def print_details(rows: Sequence[FailoverRow], repeat: int) -> None:
    """Per row: why requests failed, and what the LB logged when it marked s2 DOWN and UP."""
    for r in rows:
        name = r.lb if repeat == 1 else f"{r.lb} #{r.round}"
        if r.failure is not None:
            print(f"{name}: {r.failure}")
            continue
        shift = f"s2 killed and restarted {r.shift_s:.3f} s late. " if r.shift_s else ""
        print(
            f"{name}: {shift}{failures_text(r)} After the restart s2 listened after "
            f"{_fmt(r.backend_listening_s, '.3f', ' s')}, was logged UP after "
            f"{_fmt(r.marked_up_s, '.3f', ' s')}."
        )
        print(f"    DOWN: {r.down_line or '(no DOWN line after the kill)'}")
        print(f"    UP:   {r.up_line or '(no UP line after the restart)'}")


def failures_text(row: FailoverRow) -> str:
    if not row.failed:
        return "0 failed."
    reasons = ", ".join(f"{n} x {why}" for why, n in row.failure_reasons.items())
    last = _fmt(row.last_failure_s, ".3f", " s")
    return f"{row.failed} failed ({reasons}), the last sent {last} after the kill."


def pinning_text(pinning: Pinning) -> str:
    if pinning.lb_cpu is None:
        return pinning.reason
    return f"LB on CPU {pinning.lb_cpu}, clients and backends on CPU {pinning.load_cpu}"


def report(
    args: argparse.Namespace, rows: list[FailoverRow], pinning: Pinning, interrupted: bool
) -> None:
    scenario: Scenario = args.scenario
    title = (
        f"Failover: {scenario.rate:g} req/s open loop for {scenario.duration_s:g} s, "
        f"1 in {scenario.new_connection_every} on a new connection; SIGKILL {VICTIM} at "
        f"{scenario.kill_at_s:g} s, restart at {scenario.restart_at_s:g} s"
        + (f" (+ 0-{scenario.jitter_s:g} s per round)" if scenario.jitter_s else "")
        + (" (INTERRUPTED, partial)" if interrupted else "")
    )
    print_table(rows, title, args.repeat)
    print(
        f"detection: kill → the LB's log says {BACKEND_BLOCK}/{VICTIM} DOWN; return: restart → "
        f"first response from {VICTIM}; outage: requests sent between kill and restart; "
        f"{pinning_text(pinning)}"
    )
    print_details(rows, args.repeat)
    verdicts = target_verdicts(rows)
    print("\n".join(verdicts))
    if args.json is not None:
        meta = {
            "scenario": asdict(scenario),
            "check": args.settings.check,
            "passive_only": args.settings.passive_only,
            "bascule_config_extra": dict(args.settings.bascule_extra),
            "repeat": args.repeat,
            "seed": args.seed,
            "pinning": pinning_text(pinning),
            "interrupted": interrupted,
            "haproxy": tool_version(["haproxy", "-v"]),
            "bascule": tool_version([args.bascule, "--version"]),
        }
        document = {"meta": meta, "results": [asdict(r) for r in rows], "target": verdicts}
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"Results written to {args.json}")


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Kill a backend under steady open-loop traffic; Bascule vs HAProxy.",
    )
    parser.add_argument("--lbs", default=",".join(LB_NAMES), help="subset of: bascule, haproxy")
    parser.add_argument("--repeat", type=int, default=1, help="runs per LB (1)")
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second (300)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of traffic (20)")
    parser.add_argument("--kill-at", type=float, default=6.0, help="SIGKILL s2 at (6 s)")
    parser.add_argument("--restart-at", type=float, default=12.0, help="restart s2 at (12 s)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-request timeout (2 s)")
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help="each round, kill and restart s2 later by one random offset below this many "
        "seconds, the same for every LB of the round (0)",
    )
    parser.add_argument("--seed", type=int, help="seed for --jitter (random by default)")
    parser.add_argument(
        "--new-connection-every",
        type=int,
        default=5,
        help="every Nth request opens a new connection, the others reuse one (5)",
    )
    parser.add_argument(
        "--check",
        choices=("tcp", "http"),
        default="tcp",
        help="active check for both LBs: tcp connect, or HTTP GET / (tcp)",
    )
    parser.add_argument(
        "--passive-only",
        action="store_true",
        help="Bascule without its check: block: passive detection (max_fails 3) alone",
    )
    parser.add_argument(
        "--bascule-config-extra",
        default="",
        metavar="YAML",
        help="YAML mapping merged into Bascule's backend block, "
        "e.g. '{passive: {fail_timeout: 2s}}'",
    )
    parser.add_argument("--bascule", default=default_bascule_command(), help="bascule executable")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--start-timeout", type=float, default=10.0, help="seconds a process may take to listen"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep-temp", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rate <= 0 or args.timeout <= 0 or args.new_connection_every < 1:
        parser.error("--repeat and --new-connection-every must be >= 1, --rate and --timeout > 0")
    if args.jitter < 0 or not 0 < args.kill_at < args.restart_at < args.duration - args.jitter:
        parser.error("need --jitter >= 0 and 0 < --kill-at < --restart-at < --duration - --jitter")
    args.lbs = tuple(split_choice(parser, args.lbs, LB_NAMES, "--lbs"))
    args.scenario = Scenario(
        rate=args.rate,
        duration_s=args.duration,
        kill_at_s=args.kill_at,
        restart_at_s=args.restart_at,
        request_timeout_s=args.timeout,
        new_connection_every=args.new_connection_every,
        keepalive_pool=16,
        jitter_s=args.jitter,
    )
    args.settings = LbSettings(args.check, args.passive_only, parse_extra(parser, args))
    return args


def parse_extra(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Mapping[str, Any]:
    if not args.bascule_config_extra:
        return {}
    try:
        extra = yaml.safe_load(args.bascule_config_extra)
    except yaml.YAMLError as exc:
        parser.error(f"--bascule-config-extra is not valid YAML: {exc}")
    if not isinstance(extra, dict):
        parser.error(
            "--bascule-config-extra must be a YAML mapping such as '{passive: {max_fails: 1}}'"
        )
    return extra


def run_all(args: argparse.Namespace, rows: list[FailoverRow], ctx: RunContext) -> None:
    rng = random.Random(args.seed)
    for round_no in range(1, args.repeat + 1):
        shift_s = rng.uniform(0, ctx.scenario.jitter_s)
        # Alternate the order each round so neither LB always runs first.
        order = args.lbs if round_no % 2 else tuple(reversed(args.lbs))
        for lb in order:
            log(f"failover: {lb} ({ctx.settings.describe(lb)}), run {round_no}/{args.repeat}")
            row = run_once(lb, round_no, shift_s, ctx)
            rows.append(row)
            if row.failure is not None:
                log(f"  {lb}: {row.failure}")
            else:
                detection = _fmt(row.detection_s, ".3f", " s")
                back = _fmt(row.return_s, ".3f", " s")
                log(f"  {lb}: {row.failed}/{row.sent} failed, detection {detection}, return {back}")


@contextlib.contextmanager
def this_process_on(cpu: int | None) -> Iterator[None]:
    """Pin the load generator (this process) beside the backends, away from the LB."""
    if cpu is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    pinning = choose_pinning(not args.no_pin)
    rows: list[FailoverRow] = []
    interrupted = False
    with work_directory(args.keep_temp) as workdir, this_process_on(pinning.load_cpu):
        ctx = RunContext(
            workdir=workdir,
            registry=ProcessRegistry(),
            ports=PortAllocator(),
            pinning=pinning,
            scenario=args.scenario,
            settings=args.settings,
            bascule=args.bascule,
            start_timeout_s=args.start_timeout,
        )
        try:
            run_all(args, rows, ctx)
        except KeyboardInterrupt:
            interrupted = True
            log("failover: interrupted; all started processes were stopped")
        finally:
            ctx.registry.stop_all()
    report(args, rows, pinning, interrupted)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
