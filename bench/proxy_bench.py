"""Side-by-side benchmark: Bascule vs HAProxy vs nginx in front of the same backends.

This script owns the whole benchmark run: it starts two cheap nginx backends, starts each
load balancer (LB) under test from a config it writes into its own temp dir, checks that
one request goes through, drives it with wrk, samples the LB's CPU time from /proc, prints
a table and optionally writes JSON. Every process it starts is stopped by PID in a
``finally`` block, also on Ctrl-C or SIGTERM.

The numbers that matter are ratios between LBs measured in the same run (the machine is
small and shared), chiefly the LB's CPU microseconds per request. See bench/README.md.

Run it with:  .venv/bin/python bench/proxy_bench.py [--quick] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template
from types import FrameType
from typing import Any, Literal

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WRK_REPORT_SCRIPT = BENCH_DIR / "wrk_report.lua"
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
LOOPBACK = "127.0.0.1"
EXPECTED_BODY = b"hello\n"
LB_NAMES = ("bascule", "haproxy", "nginx", "bare")
# LBs that only forward HTTP keep-alive traffic: not started for TCP or http-close.
KEEPALIVE_ONLY_LBS = frozenset({"bare"})
BARE_FORWARDER = BENCH_DIR / "bare_forwarder.py"
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# Targets agreed for Bascule: (scenario, baseline LB, max CPU/request ratio vs that baseline).
TARGETS = (("http-keepalive", "haproxy", 1.3), ("tcp", "nginx", 1.3))

LbMode = Literal["http", "tcp"]
# Writes an LB's config into its instance dir and returns the argv that runs it.
LbWriter = Callable[[Path, LbMode, int, Sequence[int]], list[str]]


# ---------------------------------------------------------------------------------------
# Scenarios and results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One benchmark row group: how the LB is configured and how wrk talks to it."""

    name: str
    lb_mode: LbMode
    close_per_request: bool
    description: str
    # Milliseconds each wrk connection waits between requests (0 = as fast as it can).
    pace_ms: int = 0
    # Every request gets its own path and X-Request-Id value (no head repeats another).
    vary: bool = False


SCENARIOS = (
    Scenario(
        "http-keepalive",
        "http",
        close_per_request=False,
        description="HTTP mode, client keep-alive, keep-alive to upstream",
    ),
    Scenario(
        "http-keepalive-paced",
        "http",
        close_per_request=False,
        description=(
            "the same, each connection pausing 10 ms between requests: every LB at the "
            "same request rate (at most 5,000/s with 50 connections), where each one also "
            "pays the wake-ups a fast LB saves by batching"
        ),
        pace_ms=10,
    ),
    Scenario(
        "http-keepalive-varied",
        "http",
        close_per_request=False,
        description=(
            "the same, but every request has its own path and X-Request-Id value, so no "
            "request head repeats the one before it (as with real clients)"
        ),
        vary=True,
    ),
    Scenario(
        "http-close",
        "http",
        close_per_request=True,
        description="HTTP mode, new client connection per request (Connection: close)",
    ),
    Scenario(
        "tcp",
        "tcp",
        close_per_request=False,
        description="TCP (L4) mode, wrk keep-alive HTTP through it",
    ),
)


@dataclass(frozen=True)
class WrkReport:
    """What one wrk run measured, from the BENCH_JSON line of wrk_report.lua."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class Sample:
    """One measured run of one LB in one scenario."""

    wrk: WrkReport
    lb_cpu_s: float
    round: int = 0  # which repeat: every LB of a scenario is measured once per round

    @property
    def cpu_us_per_request(self) -> float:
        return self.lb_cpu_s * 1e6 / self.wrk.requests


@dataclass
class CellResult:
    """The reported result of one (scenario, LB) cell: medians over the repeats."""

    scenario: str
    lb: str
    requests_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us_per_request: float | None = None
    errors: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    requests: int = 0
    samples: int = 0
    cpu_ratio_vs_haproxy: float | None = None
    cpu_ratio_vs_nginx: float | None = None
    # The same ratio in each round (this LB's run over the baseline's run of that round);
    # the ratios above are the medians of these.
    round_ratios_vs_haproxy: list[float] = field(default_factory=list)
    round_ratios_vs_nginx: list[float] = field(default_factory=list)
    failure: str | None = None
    sample_details: list[dict[str, float]] = field(default_factory=list)
    cpu_by_round: dict[int, float] = field(default_factory=dict)


class BenchError(Exception):
    """A cell (or the backends) could not be measured; the message says why."""


# ---------------------------------------------------------------------------------------
# Process management: start by argv, watch /proc, stop by PID
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this script needs."""

    pid: int
    ppid: int
    cpu_ticks: int
    start_ticks: int


def read_proc_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')', so split
    # after the last ')': what follows starts at field 3 (state) of proc(5).
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return ProcStat(pid, int(fields[1]), utime + stime, int(fields[19]))


def process_tree(root_pid: int) -> list[ProcStat]:
    """The root process and all its descendants (nginx master + workers, for instance)."""
    by_parent: dict[int, list[ProcStat]] = {}
    root: ProcStat | None = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_proc_stat(int(entry.name))
        if stat is None:
            continue
        if stat.pid == root_pid:
            root = stat
        by_parent.setdefault(stat.ppid, []).append(stat)
    if root is None:
        return []
    tree, frontier = [root], [root]
    while frontier:
        children = by_parent.get(frontier.pop().pid, [])
        tree.extend(children)
        frontier.extend(children)
    return tree


def tree_cpu_ticks(root_pid: int) -> dict[tuple[int, int], int]:
    """CPU ticks (user+system) per process of the tree, keyed by (pid, start time)."""
    return {(s.pid, s.start_ticks): s.cpu_ticks for s in process_tree(root_pid)}


def cpu_seconds_between(
    before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]
) -> float:
    """CPU used between two tree samples; a process born in between counts fully."""
    ticks = sum(used - before.get(key, 0) for key, used in after.items())
    return ticks / CLOCK_TICKS_PER_SECOND


def tail(path: Path, lines: int = 6, max_chars: int = 600) -> str:
    """The last lines of a log file, for failure messages."""
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return "(no output)"
    if not text:
        return "(no output)"
    last = "\n".join(text.splitlines()[-lines:])
    return last[-max_chars:]


class ManagedProcess:
    """A server process this script started; output goes to a log file in the temp dir."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("wb")
        # Own session: Ctrl-C in the terminal must not reach the servers half-way through a
        # measurement; the finally blocks stop them deliberately, by PID.
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def output_tail(self) -> str:
        return tail(self.log_path)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL; also kill descendants a killed master left behind."""
        if self.is_running():
            descendants = [s for s in process_tree(self.pid) if s.pid != self.pid]
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout_s)
            for child in descendants:
                still = read_proc_stat(child.pid)
                # Same pid and start time means it is still our child, not a reused pid.
                if still is not None and still.start_ticks == child.start_ticks:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)
        self._log.close()


class ProcessRegistry:
    """Every process started in this run, so one finally block can stop them all."""

    def __init__(self) -> None:
        self._processes: list[ManagedProcess] = []

    def start(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path, cwd)
        self._processes.append(process)
        return process

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        if process in self._processes:
            self._processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(self._processes):
            with contextlib.suppress(Exception):
                process.stop()
        self._processes.clear()


@dataclass(frozen=True)
class Pinning:
    """Which CPU the LB gets and which CPU wrk and the backends share (None: no pinning)."""

    lb_cpu: int | None
    load_cpu: int | None
    taskset: str | None
    reason: str

    def prefix(self, cpu: int | None) -> list[str]:
        if self.taskset is None or cpu is None:
            return []
        return [self.taskset, "-c", str(cpu)]

    @property
    def for_lb(self) -> list[str]:
        return self.prefix(self.lb_cpu)

    @property
    def for_load(self) -> list[str]:
        return self.prefix(self.load_cpu)


def choose_pinning(enabled: bool) -> Pinning:
    """LB alone on one CPU, wrk + backends on another, when taskset and 2 CPUs exist."""
    if not enabled:
        return Pinning(None, None, None, "pinning disabled (--no-pin)")
    taskset = shutil.which("taskset")
    if taskset is None:
        return Pinning(None, None, None, "no pinning: taskset not found")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Pinning(None, None, None, f"no pinning: only CPU(s) {cpus} available")
    load_cpu, lb_cpu = cpus[0], cpus[1]
    return Pinning(lb_cpu, load_cpu, taskset, f"LB on CPU {lb_cpu}, wrk+backends on CPU {load_cpu}")


# ---------------------------------------------------------------------------------------
# Network helpers
# ---------------------------------------------------------------------------------------


class PortAllocator:
    """Free loopback ports, never the same one twice in a run."""

    def __init__(self) -> None:
        self._given: set[int] = set()

    def take(self) -> int:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((LOOPBACK, 0))
                port = int(probe.getsockname()[1])
            if port not in self._given:
                self._given.add(port)
                return port
        raise BenchError("could not find a free port on 127.0.0.1 after 50 tries")


def wait_until_listening(process: ManagedProcess, port: int, timeout_s: float) -> None:
    """Return once the port accepts connections; raise if the process exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.is_running():
            raise BenchError(
                f"failed to start (exit code {process.popen.returncode}): {process.output_tail()}"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(
        f"failed to start: not listening on {LOOPBACK}:{port} after {timeout_s:g}s: "
        f"{process.output_tail()}"
    )


def check_hello(port: int, attempts: int = 2) -> None:
    """A plain GET through the LB must return 200 'hello' (twice: round robin hits both)."""
    for attempt in range(1, attempts + 1):
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=3)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise BenchError(
                f"sanity check failed: request {attempt} to {LOOPBACK}:{port}: {exc!r}"
            ) from exc
        finally:
            connection.close()
        if response.status != 200 or body != EXPECTED_BODY:
            raise BenchError(
                f"sanity check failed: request {attempt} to {LOOPBACK}:{port} returned "
                f"{response.status} {body[:80]!r}, expected 200 {EXPECTED_BODY!r}"
            )


# ---------------------------------------------------------------------------------------
# Config writers: one per server kind
# ---------------------------------------------------------------------------------------


def _nginx_main_preamble(instance_dir: Path, load_stream: bool) -> str:
    # Running as root, nginx workers would switch to 'nobody' and could not enter the
    # 0700 temp dir; run them as root like the other processes here.
    user_line = "user root;\n" if os.geteuid() == 0 else ""
    module_line = ""
    if load_stream and NGINX_STREAM_MODULE.exists():
        module_line = f"load_module {NGINX_STREAM_MODULE};\n"
    return (
        f"{module_line}{user_line}"
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        f"pid {instance_dir / 'nginx.pid'};\n"
        f"error_log {instance_dir / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
    )


def nginx_argv(instance_dir: Path, conf: Path) -> list[str]:
    # -e: nginx 1.19.5+ opens this error log before reading the config, so it never
    # touches /var/log/nginx.
    return [
        "nginx",
        "-p",
        f"{instance_dir}/",
        "-e",
        str(instance_dir / "error.log"),
        "-c",
        str(conf),
    ]


BACKEND_SERVER = Template(
    "    server {\n"
    "        listen ${address}:${port} backlog=4096;\n"
    '        location / { return 200 "hello\\n"; }\n'
    "    }\n"
)


def write_backend_nginx(instance_dir: Path, ports: Sequence[int]) -> list[str]:
    """One nginx, one worker, answering 'hello' on each backend port."""
    servers = "".join(BACKEND_SERVER.substitute(address=LOOPBACK, port=p) for p in ports)
    conf = instance_dir / "backend.conf"
    conf.write_text(
        _nginx_main_preamble(instance_dir, load_stream=False) + "http {\n"
        "    access_log off;\n"
        "    keepalive_requests 100000;\n"
        "    keepalive_timeout 60s;\n"
        f"{servers}"
        "}\n"
    )
    return nginx_argv(instance_dir, conf)


def write_nginx_lb(
    instance_dir: Path, mode: LbMode, port: int, backends: Sequence[int]
) -> list[str]:
    if mode == "http":
        upstreams = "".join(f"        server {LOOPBACK}:{p};\n" for p in backends)
        body = (
            "http {\n"
            "    access_log off;\n"
            "    keepalive_requests 100000;\n"
            "    upstream app {\n"
            f"{upstreams}"
            "        keepalive 64;\n"
            "        keepalive_requests 100000;\n"
            "    }\n"
            "    server {\n"
            f"        listen {LOOPBACK}:{port} backlog=4096;\n"
            "        location / {\n"
            "            proxy_pass http://app;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "        }\n"
            "    }\n"
            "}\n"
        )
    else:
        upstreams = "".join(f"        server {LOOPBACK}:{p};\n" for p in backends)
        body = (
            "stream {\n"
            f"    upstream app {{\n{upstreams}    }}\n"
            f"    server {{ listen {LOOPBACK}:{port} backlog=4096; proxy_pass app; }}\n"
            "}\n"
        )
    conf = instance_dir / "lb.conf"
    conf.write_text(_nginx_main_preamble(instance_dir, load_stream=mode == "tcp") + body)
    return nginx_argv(instance_dir, conf)


def write_haproxy_lb(
    instance_dir: Path, mode: LbMode, port: int, backends: Sequence[int]
) -> list[str]:
    servers = "".join(f"    server b{i} {LOOPBACK}:{p}\n" for i, p in enumerate(backends, 1))
    http_options = "    option http-keep-alive\n    http-reuse safe\n" if mode == "http" else ""
    conf = instance_dir / "haproxy.cfg"
    conf.write_text(
        "global\n"
        "    nbthread 1\n"
        "    maxconn 4096\n"
        "defaults\n"
        f"    mode {mode}\n"
        "    timeout connect 5s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "    timeout http-keep-alive 30s\n"
        f"{http_options}"
        "frontend bench\n"
        f"    bind {LOOPBACK}:{port}\n"
        "    default_backend app\n"
        "backend app\n"
        "    balance roundrobin\n"
        f"{servers}"
    )
    # -db: stay in the foreground, one process, so our PID is the proxy itself.
    return ["haproxy", "-db", "-f", str(conf)]


def bascule_config(mode: LbMode, port: int, backends: Sequence[int]) -> dict[str, Any]:
    return {
        "global": {"grace": "1s", "log_level": "warning"},
        "frontends": [
            {
                "name": "bench",
                "bind": f"{LOOPBACK}:{port}",
                "mode": mode,
                "default_backend": "app",
            }
        ],
        "backends": [
            {
                "name": "app",
                "algorithm": "round_robin",
                "servers": [
                    {"name": f"b{i}", "address": LOOPBACK, "port": p}
                    for i, p in enumerate(backends, 1)
                ],
            }
        ],
    }


def make_bascule_writer(bascule: str) -> LbWriter:
    def write(instance_dir: Path, mode: LbMode, port: int, backends: Sequence[int]) -> list[str]:
        conf = instance_dir / "bascule.yaml"
        conf.write_text(yaml.safe_dump(bascule_config(mode, port, backends), sort_keys=False))
        return [bascule, "run", "-c", str(conf)]

    return write


def write_bare_lb(
    instance_dir: Path, mode: LbMode, port: int, backends: Sequence[int]
) -> list[str]:
    """The floor: bench/bare_forwarder.py, run by the same Python as Bascule."""
    return [sys.executable, str(BARE_FORWARDER), str(port), *map(str, backends)]


def default_bascule_command() -> str:
    """The bascule entry point of the venv running this script, else the repo's .venv."""
    beside_python = Path(sys.executable).parent / "bascule"
    if beside_python.exists():
        return str(beside_python)
    return str(REPO_ROOT / ".venv" / "bin" / "bascule")


# ---------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSettings:
    """How wrk drives every cell."""

    connections: int
    threads: int
    duration_s: int
    warmup_s: int
    pin_prefix: tuple[str, ...]


def wrk_argv(load: LoadSettings, port: int, duration_s: int, close: bool) -> list[str]:
    argv = [
        *load.pin_prefix,
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(WRK_REPORT_SCRIPT),
    ]
    if close:
        argv += ["-H", "Connection: close"]
    return [*argv, f"http://{LOOPBACK}:{port}/"]


def parse_wrk_output(stdout: str) -> WrkReport:
    """Read the BENCH_JSON line wrk_report.lua prints at the end of the run."""
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            socket_errors = sum(
                int(data[key])
                for key in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
            )
            return WrkReport(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_ms=int(data["p50_us"]) / 1000,
                p99_ms=int(data["p99_us"]) / 1000,
                socket_errors=socket_errors,
                non_2xx=int(data["errors_status"]),
            )
    raise BenchError(f"wrk printed no BENCH_JSON report; its output ends with: {stdout[-400:]!r}")


def run_wrk(load: LoadSettings, port: int, duration_s: int, scenario: Scenario) -> WrkReport:
    argv = wrk_argv(load, port, duration_s, scenario.close_per_request)
    env = {  # read by wrk_report.lua
        **os.environ,
        "BENCH_PACE_MS": str(scenario.pace_ms),
        "BENCH_VARY": "1" if scenario.vary else "0",
    }
    try:
        finished = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration_s + 30:g}s") from exc
    if finished.returncode != 0:
        raise BenchError(
            f"wrk exited with {finished.returncode}: {(finished.stderr or finished.stdout)[-400:]}"
        )
    return parse_wrk_output(finished.stdout)


# ---------------------------------------------------------------------------------------
# Running the cells
# ---------------------------------------------------------------------------------------


@dataclass
class RunningLb:
    """An LB started for one scenario, or why it could not be."""

    name: str
    port: int
    process: ManagedProcess | None
    failure: str | None = None
    samples: list[Sample] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_lb(
    name: str,
    writer: LbWriter,
    scenario: Scenario,
    ctx: RunContext,
) -> RunningLb:
    port = ctx.ports.take()
    instance_dir = ctx.workdir / f"{scenario.name}-{name}"
    instance_dir.mkdir()
    try:
        argv = writer(instance_dir, scenario.lb_mode, port, ctx.backend_ports)
        if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
            raise BenchError(f"failed to start: {argv[0]} not found")
        process = ctx.registry.start(
            name, [*ctx.pinning.for_lb, *argv], instance_dir / "output.log", instance_dir
        )
    except (BenchError, OSError) as exc:
        return RunningLb(name, port, None, failure=str(exc))
    lb = RunningLb(name, port, process)
    try:
        wait_until_listening(process, port, ctx.start_timeout_s)
        check_hello(port)
    except BenchError as exc:
        lb.failure = str(exc)
    return lb


def measure(lb: RunningLb, scenario: Scenario, load: LoadSettings, round_no: int) -> Sample:
    """Warm up, then one measured wrk run with the LB's CPU sampled around it."""
    assert lb.process is not None
    if load.warmup_s > 0:
        run_wrk(load, lb.port, load.warmup_s, scenario)
    before = tree_cpu_ticks(lb.process.pid)
    report = run_wrk(load, lb.port, load.duration_s, scenario)
    after = tree_cpu_ticks(lb.process.pid)
    if not lb.process.is_running():
        raise BenchError(f"exited during the run: {lb.process.output_tail()}")
    if report.requests == 0:
        raise BenchError(
            f"no request completed ({report.socket_errors} socket errors, {report.non_2xx} non-2xx)"
        )
    return Sample(report, cpu_seconds_between(before, after), round_no)


def run_scenario(scenario: Scenario, ctx: RunContext, cells: list[CellResult]) -> None:
    """Start every LB for this scenario, measure them interleaved, append their cells.

    The cells are appended even when interrupted, so Ctrl-C still reports what was measured.
    """
    log(f"[{scenario.name}] {scenario.description}")
    lbs: list[RunningLb] = []
    try:
        for name in ctx.lb_names:
            keepalive = scenario.lb_mode == "http" and not scenario.close_per_request
            if name in KEEPALIVE_ONLY_LBS and not keepalive:
                continue
            lb = start_lb(name, ctx.writers[name], scenario, ctx)
            lbs.append(lb)
            if lb.failure:
                log(f"  {name}: {lb.failure}")
        for repeat in range(ctx.repeat):
            # Rotate the order each repeat so no LB always runs first or last.
            for lb in rotated(lbs, repeat):
                if lb.failure is None:
                    measure_into(lb, scenario, ctx.load, repeat)
    finally:
        for lb in lbs:
            if lb.process is not None:
                ctx.registry.stop(lb.process)
        cells.extend(summarize(scenario.name, lb) for lb in lbs)


def measure_into(lb: RunningLb, scenario: Scenario, load: LoadSettings, round_no: int) -> None:
    try:
        sample = measure(lb, scenario, load, round_no)
    except BenchError as exc:
        lb.failure = str(exc)
        log(f"  {lb.name}: {lb.failure}")
        return
    lb.samples.append(sample)
    log(
        f"  {lb.name}: {sample.wrk.requests_per_s:,.0f} req/s, "
        f"{sample.cpu_us_per_request:.1f} CPU µs/req, "
        f"{sample.wrk.socket_errors + sample.wrk.non_2xx} errors"
    )


def rotated(items: Sequence[RunningLb], shift: int) -> list[RunningLb]:
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]


def summarize(scenario: str, lb: RunningLb) -> CellResult:
    cell = CellResult(scenario=scenario, lb=lb.name, failure=lb.failure)
    if lb.failure is not None or not lb.samples:
        cell.failure = lb.failure or "not measured"
        return cell
    samples = lb.samples
    cell.samples = len(samples)
    cell.requests_per_s = statistics.median(s.wrk.requests_per_s for s in samples)
    cell.p50_ms = statistics.median(s.wrk.p50_ms for s in samples)
    cell.p99_ms = statistics.median(s.wrk.p99_ms for s in samples)
    cell.cpu_us_per_request = statistics.median(s.cpu_us_per_request for s in samples)
    cell.non_2xx = sum(s.wrk.non_2xx for s in samples)
    cell.socket_errors = sum(s.wrk.socket_errors for s in samples)
    cell.errors = cell.non_2xx + cell.socket_errors
    cell.requests = sum(s.wrk.requests for s in samples)
    cell.sample_details = [
        {
            "requests_per_s": s.wrk.requests_per_s,
            "cpu_us_per_request": s.cpu_us_per_request,
            "lb_cpu_s": s.lb_cpu_s,
            "p50_ms": s.wrk.p50_ms,
            "p99_ms": s.wrk.p99_ms,
            "round": s.round,
        }
        for s in samples
    ]
    cell.cpu_by_round = {s.round: s.cpu_us_per_request for s in samples}
    return cell


def add_ratios(cells: list[CellResult]) -> None:
    """CPU/request of each cell over HAProxy's and nginx's in the same scenario.

    The ratio is taken round by round, then its median kept. The LBs of one round run
    back to back, seconds apart, so a slow spell of the machine (which can last longer
    than a run) weighs on both sides of a ratio; the medians of each LB's runs, taken
    over the whole scenario, would compare runs made minutes apart.
    """
    by_key = {(c.scenario, c.lb): c for c in cells if c.cpu_us_per_request}
    for cell in cells:
        if cell.cpu_us_per_request is None:
            continue
        haproxy = by_key.get((cell.scenario, "haproxy"))
        nginx = by_key.get((cell.scenario, "nginx"))
        cell.round_ratios_vs_haproxy = round_ratios(cell, haproxy)
        cell.round_ratios_vs_nginx = round_ratios(cell, nginx)
        if cell.round_ratios_vs_haproxy:
            cell.cpu_ratio_vs_haproxy = statistics.median(cell.round_ratios_vs_haproxy)
        if cell.round_ratios_vs_nginx:
            cell.cpu_ratio_vs_nginx = statistics.median(cell.round_ratios_vs_nginx)


def round_ratios(cell: CellResult, baseline: CellResult | None) -> list[float]:
    """`cell`'s CPU/request over `baseline`'s, for each round both were measured in."""
    if baseline is None:
        return []
    mine, theirs = cell.cpu_by_round, baseline.cpu_by_round
    return [mine[r] / theirs[r] for r in sorted(mine) if theirs.get(r)]


def target_verdicts(cells: Sequence[CellResult]) -> list[str]:
    """One line per Bascule target: the measured ratio and whether it is met."""
    lines = []
    for scenario, baseline, limit in TARGETS:
        bascule = next((c for c in cells if (c.scenario, c.lb) == (scenario, "bascule")), None)
        wanted = f"Bascule CPU/req ≤ {limit}x {baseline} on {scenario}"
        if bascule is None:
            lines.append(f"{wanted}: not run")
            continue
        ratio = (
            bascule.cpu_ratio_vs_haproxy if baseline == "haproxy" else bascule.cpu_ratio_vs_nginx
        )
        rounds = (
            bascule.round_ratios_vs_haproxy
            if baseline == "haproxy"
            else bascule.round_ratios_vs_nginx
        )
        if ratio is None:
            measured = {c.lb for c in cells if c.scenario == scenario and c.failure is None}
            missing = [lb for lb in ("bascule", baseline) if lb not in measured]
            lines.append(f"{wanted}: n/a ({' and '.join(missing)} not measured)")
        else:
            verdict = "met" if ratio <= limit else "MISSED"
            spread = " ".join(f"{r:.2f}" for r in rounds)
            base = next(c for c in cells if (c.scenario, c.lb) == (scenario, baseline))
            assert bascule.cpu_us_per_request is not None and base.cpu_us_per_request
            of_medians = bascule.cpu_us_per_request / base.cpu_us_per_request
            lines.append(
                f"{wanted}: measured {ratio:.2f}x — {verdict}\n"
                f"    per round: {spread}; ratio of the medians: {of_medians:.2f}x"
            )
    return lines


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------

# Two-line headers keep the rich table within ~120 columns; the plain table joins the lines.
COLUMNS = (
    "scenario",
    "lb",
    "req/s",
    "p50",
    "p99",
    "CPU\nµs/req",
    "errors",
    "ratio vs\nhaproxy (CPU)",
    "ratio vs\nnginx (CPU)",
)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def number_failures(cells: Sequence[CellResult]) -> dict[str, int]:
    """Distinct failure messages, numbered from 1 in order of appearance.

    Bascule failing to start fails the same way in every scenario; one footnote per
    distinct message keeps a long stderr tail out of the table and from being repeated.
    """
    numbers: dict[str, int] = {}
    for cell in cells:
        if cell.failure is not None and cell.failure not in numbers:
            numbers[cell.failure] = len(numbers) + 1
    return numbers


def short_failure(message: str, number: int) -> str:
    """'failed to start [1]': the message up to its first colon, then the footnote."""
    label = message.split(":", 1)[0].split(" (", 1)[0].strip()
    if len(label) > 24:
        label = "failed"
    return f"{label} [{number}]"


def table_rows(cells: Sequence[CellResult], failures: dict[str, int]) -> list[list[str]]:
    rows = []
    for c in cells:
        rows.append(
            [
                c.scenario,
                c.lb,
                short_failure(c.failure, failures[c.failure])
                if c.failure
                else _fmt(c.requests_per_s, ",.0f"),
                _fmt(c.p50_ms, ".2f", " ms"),
                _fmt(c.p99_ms, ".2f", " ms"),
                _fmt(c.cpu_us_per_request, ".1f"),
                "—" if c.failure else str(c.errors),
                _fmt(c.cpu_ratio_vs_haproxy, ".2f", "x"),
                _fmt(c.cpu_ratio_vs_nginx, ".2f", "x"),
            ]
        )
    return rows


def print_table(cells: Sequence[CellResult], title: str) -> None:
    failures = number_failures(cells)
    rows = table_rows(cells, failures)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print_plain_table(rows, title)
    else:
        table = Table(title=title)
        for index, column in enumerate(COLUMNS):
            table.add_column(column, justify="left" if index < 2 else "right")
        previous = None
        for row, cell in zip(rows, cells, strict=True):
            if previous is not None and cell.scenario != previous:
                table.add_section()
            previous = cell.scenario
            table.add_row(*row, style="red" if cell.failure else None)
        console = Console()
        if not console.is_terminal:
            # Piped or redirected: rich would assume 80 columns and fold every cell.
            console = Console(width=120)
        console.print(table)
    print_failures(cells, failures)


def print_plain_table(rows: Sequence[Sequence[str]], title: str) -> None:
    headers = [column.replace("\n", " ") for column in COLUMNS]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def print_failures(cells: Sequence[CellResult], failures: dict[str, int]) -> None:
    for message, number in failures.items():
        where = ", ".join(f"{c.lb}/{c.scenario}" for c in cells if c.failure == message)
        print(f"[{number}] {where}: {message}")


def tool_version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text and done.returncode == 0 else "unavailable"


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """Everything the cells share for one run."""

    workdir: Path
    registry: ProcessRegistry
    ports: PortAllocator
    pinning: Pinning
    load: LoadSettings
    lb_names: tuple[str, ...]
    writers: dict[str, LbWriter]
    repeat: int
    start_timeout_s: float
    backend_ports: tuple[int, ...] = ()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Bascule against HAProxy and nginx, side by side, in one run.",
    )
    parser.add_argument("--duration", type=int, default=4, help="seconds per run (4)")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument(
        "--warmup", type=int, default=1, help="warm-up seconds per cell, 0 for none (1)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds: runs per cell, median kept (5)"
    )
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--scenarios",
        default=",".join(s.name for s in SCENARIOS),
        help="comma-separated subset of: " + ", ".join(s.name for s in SCENARIOS),
    )
    parser.add_argument(
        "--lbs",
        default=",".join(LB_NAMES),
        help="comma-separated subset of: " + ", ".join(LB_NAMES),
    )
    parser.add_argument("--bascule", default=default_bascule_command(), help="bascule executable")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--start-timeout", type=float, default=10.0, help="seconds an LB may take to listen (10)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep-temp", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3
        args.repeat = 1
    if min(args.repeat, args.duration, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error(
            "--repeat, --duration, --connections and --threads must be at least 1, "
            "--warmup at least 0"
        )
    known = {s.name: s for s in SCENARIOS}
    args.scenarios = [known[n] for n in split_choice(parser, args.scenarios, known, "--scenarios")]
    args.lbs = tuple(split_choice(parser, args.lbs, LB_NAMES, "--lbs"))
    return args


def split_choice(
    parser: argparse.ArgumentParser, value: str, allowed: Sequence[str] | dict[str, Any], flag: str
) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        parser.error(f"{flag}: unknown or empty {unknown}; choose from {', '.join(allowed)}")
    return chosen


def check_prerequisites() -> list[str]:
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    return [
        f"{tool} not found on PATH; install it (Debian: apt-get install {tool})" for tool in missing
    ]


def start_backends(ctx: RunContext) -> ManagedProcess:
    ports = (ctx.ports.take(), ctx.ports.take())
    instance_dir = ctx.workdir / "backends"
    instance_dir.mkdir()
    argv = write_backend_nginx(instance_dir, ports)
    process = ctx.registry.start(
        "backends", [*ctx.pinning.for_load, *argv], instance_dir / "output.log", instance_dir
    )
    for port in ports:
        wait_until_listening(process, port, ctx.start_timeout_s)
    ctx.backend_ports = ports
    return process


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C so the finally blocks stop every process.
    raise KeyboardInterrupt


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bascule-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"configs and logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_all(
    args: argparse.Namespace, cells: list[CellResult], workdir: Path, pinning: Pinning
) -> None:
    ctx = RunContext(
        workdir=workdir,
        registry=ProcessRegistry(),
        ports=PortAllocator(),
        pinning=pinning,
        load=LoadSettings(
            args.connections, args.threads, args.duration, args.warmup, tuple(pinning.for_load)
        ),
        lb_names=args.lbs,
        writers={
            "bascule": make_bascule_writer(args.bascule),
            "haproxy": write_haproxy_lb,
            "nginx": write_nginx_lb,
            "bare": write_bare_lb,
        },
        repeat=args.repeat,
        start_timeout_s=args.start_timeout,
    )
    try:
        start_backends(ctx)
        for scenario in args.scenarios:
            run_scenario(scenario, ctx, cells)
    finally:
        ctx.registry.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems = check_prerequisites()
    if problems:
        for problem in problems:
            log(f"proxy_bench: {problem}")
        return 2
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    pinning = choose_pinning(not args.no_pin)
    cells: list[CellResult] = []
    cell_count = len(args.scenarios) * len(args.lbs) * args.repeat
    log(
        f"proxy_bench: {cell_count} runs of {args.warmup:g}+{args.duration:g}s, "
        f"wrk -t{args.threads} -c{args.connections}; {pinning.reason}"
    )
    interrupted = False
    exit_code = 0
    with work_directory(args.keep_temp) as workdir:
        try:
            run_all(args, cells, workdir, pinning)
        except KeyboardInterrupt:
            interrupted = True
            exit_code = 130
            log("proxy_bench: interrupted; all started processes were stopped")
        except BenchError as exc:
            log(f"proxy_bench: backends could not start: {exc}")
            return 1
    add_ratios(cells)
    report(args, cells, pinning, interrupted)
    return exit_code


def report(
    args: argparse.Namespace, cells: list[CellResult], pinning: Pinning, interrupted: bool
) -> None:
    title = (
        f"LB benchmark: wrk -t{args.threads} -c{args.connections}, {args.duration:g}s per cell, "
        f"median of {args.repeat} (ratios: median of the per-round ratios); {pinning.reason}"
        + (" (INTERRUPTED, partial)" if interrupted else "")
    )
    print_table(cells, title)
    print("CPU µs/req = LB user+system CPU (all its processes) during the wrk run / requests.")
    print("Targets:")
    verdicts = target_verdicts(cells)
    for line in verdicts:
        print(f"  {line}")
    if args.json is not None:
        meta = {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "pinning": pinning.reason,
            "interrupted": interrupted,
            "haproxy": tool_version(["haproxy", "-v"]),
            "nginx": tool_version(["nginx", "-v"]),
            "bascule": tool_version([args.bascule, "--version"]),
            "scenarios": {s.name: s.description for s in SCENARIOS},
        }
        document = {"meta": meta, "results": [asdict(c) for c in cells], "targets": verdicts}
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
