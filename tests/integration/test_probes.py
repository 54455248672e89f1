"""Active health-check probes against real servers on loopback.

Every probe kind is run against a healthy and a sick endpoint; the sick ones
cover what the issue names: a server that accepts and never answers, answers
500, flaps, sends garbage or an endless body, dribbles, resets; a check command
that fails, hangs (and is killed with its children) or reads its environment;
and every kind of HAProxy agent answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import stat
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.health.probes import (
    AgentCheckSpec,
    CheckSpec,
    CommandCheckSpec,
    HttpCheckSpec,
    TcpCheckSpec,
    parse_agent_answer,
    run_check,
)
from bascule.health.results import CheckResult
from check_servers import (
    FullBacklog,
    Recorder,
    agent,
    closed_port,
    dribble,
    endless_body,
    flapping,
    http_answer,
    http_status,
    reset_after_request,
    response,
    silent,
)
from tcp_servers import LIVE, Handler, TcpServer

HOST = "127.0.0.1"
# Slack on top of a check's timeout for the verdict to come back (a loaded CI machine).
SLACK = 0.2


def assert_ended_at_timeout(elapsed: float, timeout: float) -> None:
    # The loop's clock has millisecond resolution: a timer may fire a hair early.
    assert timeout - 0.01 <= elapsed < timeout + SLACK, elapsed


@pytest.fixture(autouse=True)
async def _stop_servers() -> AsyncIterator[None]:
    yield
    while LIVE:
        await LIVE.pop().stop()


async def serve(handler: Handler) -> int:
    return (await TcpServer(handler).start()).port


def http(port: int, timeout: float = 1.0, **fields: Any) -> HttpCheckSpec:
    return HttpCheckSpec(HOST, port, timeout, **fields)


async def timed(spec: HttpCheckSpec | TcpCheckSpec | AgentCheckSpec) -> tuple[CheckResult, float]:
    start = time.monotonic()
    result = await run_check(spec)
    return result, time.monotonic() - start


# -- tcp ------------------------------------------------------------------------------------


async def test_tcp_check_passes_when_the_port_accepts() -> None:
    server = await TcpServer(silent).start()
    result = await run_check(TcpCheckSpec(HOST, server.port, 1.0))
    assert result.ok, result.reason
    assert 0 < result.duration < 1.0


async def test_tcp_check_never_reaches_the_server_application() -> None:
    # Like HAProxy's pure TCP check: the SYN-ACK proves the port open and our reset
    # goes out before the handshake's last ACK, so the server's kernel drops the
    # connection before accept(): the application is not woken and logs nothing.
    server = await TcpServer(silent).start()
    for _ in range(5):
        assert (await run_check(TcpCheckSpec(HOST, server.port, 1.0))).ok
    await asyncio.sleep(0.05)
    assert server.connection_count == 0


async def test_tcp_check_fails_with_connect_refused() -> None:
    result = await run_check(TcpCheckSpec(HOST, closed_port(), 1.0))
    assert not result.ok
    assert result.reason == "tcp check: connect refused"


async def test_tcp_check_gives_up_on_a_blackholed_connect_at_the_timeout() -> None:
    blackhole = FullBacklog()
    try:
        result, elapsed = await timed(TcpCheckSpec(HOST, blackhole.port, 0.3))
    finally:
        blackhole.close()
    assert not result.ok
    assert result.reason == "tcp check: connect timeout after 0.3s"
    assert_ended_at_timeout(elapsed, 0.3)


async def test_tcp_check_resolves_a_host_name() -> None:
    server = await TcpServer(silent).start()
    assert (await run_check(TcpCheckSpec("localhost", server.port, 1.0))).ok
    refused = await run_check(TcpCheckSpec("localhost", closed_port(), 1.0))
    assert not refused.ok
    # One address refused, or each of localhost's addresses (127.0.0.1, ::1) failed.
    assert refused.reason == "tcp check: connect refused" or refused.reason.startswith(
        "tcp check: Multiple exceptions: "
    ), refused.reason


async def test_tcp_check_names_a_host_that_does_not_resolve() -> None:
    result = await run_check(TcpCheckSpec("no-such-host.invalid", 80, 2.0))
    assert not result.ok
    assert result.reason.startswith("tcp check: cannot resolve no-such-host.invalid: ")


# -- http: healthy ------------------------------------------------------------------------------


async def test_http_check_passes_on_200_and_sends_a_proper_request() -> None:
    recorder = Recorder()
    port = await serve(http_answer(response(200), recorder))
    result = await run_check(http(port, path="/health?full=1", host_header="web.example"))
    assert result.ok, result.reason
    assert result.reason == "http check: status 200"
    head = recorder.received[0]
    assert head.startswith(b"GET /health?full=1 HTTP/1.1\r\n")
    assert b"\r\nHost: web.example\r\n" in head
    assert b"\r\nUser-Agent: bascule-check\r\n" in head
    assert b"\r\nConnection: close\r\n" in head


async def test_http_check_default_host_header_is_the_server_address() -> None:
    recorder = Recorder()
    port = await serve(http_answer(response(200), recorder))
    await run_check(http(port, method="HEAD"))
    assert recorder.received[0].startswith(b"HEAD / HTTP/1.1\r\n")
    assert f"\r\nHost: {HOST}:{port}\r\n".encode() in recorder.received[0]


async def test_http_check_accepts_a_listed_status_outside_the_default_range() -> None:
    port = await serve(http_status(503))
    result = await run_check(http(port, expect_status=((200, 200), (503, 503))))
    assert result.ok, result.reason


async def test_http_check_skips_an_interim_100_continue() -> None:
    port = await serve(http_answer(b"HTTP/1.1 100 Continue\r\n\r\n" + response(204, b"")))
    result = await run_check(http(port))
    assert result.ok, result.reason
    assert result.reason == "http check: status 204"


# -- http: unhealthy ----------------------------------------------------------------------------


async def test_http_check_fails_on_500_naming_the_expected_range() -> None:
    port = await serve(http_status(500))
    result = await run_check(http(port))
    assert not result.ok
    assert result.reason == "http check: status 500 (expected 200-399)"


async def test_http_check_names_every_expected_code_and_range() -> None:
    port = await serve(http_status(404))
    result = await run_check(http(port, expect_status=((200, 204), (301, 301))))
    assert result.reason == "http check: status 404 (expected 200-204, 301)"


async def test_http_check_fails_with_connect_refused() -> None:
    result = await run_check(http(closed_port()))
    assert not result.ok
    assert result.reason == "http check: connect refused"


async def test_http_check_on_a_server_that_never_answers_fails_at_the_timeout() -> None:
    port = await serve(silent)
    result, elapsed = await timed(http(port, timeout=0.3))
    assert not result.ok
    assert result.reason == "http check: timeout after 0.3s"
    assert_ended_at_timeout(elapsed, 0.3)
    assert_ended_at_timeout(result.duration, 0.3)


async def test_http_check_gives_up_on_a_blackholed_connect_at_the_timeout() -> None:
    blackhole = FullBacklog()
    try:
        result, elapsed = await timed(http(blackhole.port, timeout=0.3))
    finally:
        blackhole.close()
    assert result.reason == "http check: connect timeout after 0.3s"
    assert_ended_at_timeout(elapsed, 0.3)


async def test_http_check_follows_a_flapping_server() -> None:
    port = await serve(flapping([200, 500]))
    results = [await run_check(http(port)) for _ in range(4)]
    assert [r.ok for r in results] == [True, False, True, False]


async def test_http_check_calls_garbage_a_malformed_response() -> None:
    port = await serve(http_answer(b"\x00\xffSSH-2.0-OpenSSH_9.6\r\n\r\n"))
    result = await run_check(http(port))
    assert not result.ok
    assert result.reason.startswith("http check: malformed response: ")


async def test_http_check_stops_a_response_head_that_never_ends() -> None:
    endless_headers = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: yyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n" * 2000
    port = await serve(http_answer(endless_headers))
    result = await run_check(http(port))
    assert not result.ok
    assert result.reason == "http check: malformed response: head larger than 16384 bytes"


async def test_http_check_reports_a_reset_connection() -> None:
    port = await serve(reset_after_request)
    result = await run_check(http(port))
    assert not result.ok
    assert result.reason in (
        "http check: connection reset",
        "http check: server closed the connection without answering",
    )


async def test_http_check_reports_a_close_before_any_answer() -> None:
    port = await serve(http_answer(b""))
    result = await run_check(http(port))
    assert result.reason == "http check: server closed the connection without answering"


async def test_http_check_on_a_dribbling_server_fails_at_the_timeout() -> None:
    port = await serve(dribble(response(200), every=0.1))
    result, elapsed = await timed(http(port, timeout=0.5))
    assert not result.ok
    assert re.fullmatch(
        r"http check: timeout after 0\.5s \(response head incomplete, \d+ bytes received\)",
        result.reason,
    ), result.reason
    assert_ended_at_timeout(elapsed, 0.5)


async def test_http_check_on_an_endless_body_stops_at_max_body_with_bounded_memory() -> None:
    sent: list[int] = []
    port = await serve(endless_body(sent))
    spec = http(port, timeout=2.0, expect_body="ok", max_body=64 * 1024)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        result, elapsed = await timed(spec)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert not result.ok
    assert result.reason == (
        'http check: body does not contain "ok" (read only the first 65536 bytes, max_body)'
    )
    assert elapsed < 1.0  # decided on the first max_body bytes, not at the timeout
    # max_body kept, plus one read buffer in flight (uvloop reads up to 256 KiB at a
    # time) and the server's own 64 KiB chunk; an unbounded reader would hold megabytes.
    assert peak < 64 * 1024 + 2 * 256 * 1024 + 128 * 1024, peak


# -- http: body -----------------------------------------------------------------------------------


async def test_http_check_finds_the_expected_substring() -> None:
    port = await serve(http_status(200, b'{"status": "ok", "db": "up"}'))
    result = await run_check(http(port, expect_body='"db": "up"'))
    assert result.ok, result.reason


async def test_http_check_fails_when_the_substring_is_missing() -> None:
    port = await serve(http_status(200, b"degraded"))
    result = await run_check(http(port, expect_body="ok"))
    assert not result.ok
    assert result.reason == 'http check: body does not contain "ok"'


async def test_http_check_does_not_find_a_substring_beyond_max_body() -> None:
    port = await serve(http_status(200, b"x" * 100 + b"ok"))
    result = await run_check(http(port, expect_body="ok", max_body=100))
    assert not result.ok
    assert result.reason.endswith("(read only the first 100 bytes, max_body)")


async def test_http_check_matches_the_body_regex() -> None:
    port = await serve(http_status(200, b"version=3.2 state=READY\n"))
    assert (await run_check(http(port, expect_body_regex=re.compile(r"state=READY$")))).ok
    failing = await run_check(http(port, expect_body_regex=re.compile(r"^state=")))
    assert failing.reason == "http check: body does not match /^state=/"


async def test_http_check_needs_both_substring_and_regex_when_both_are_set() -> None:
    port = await serve(http_status(200, b"ok\nversion=3\n"))
    both = await run_check(
        http(port, expect_body="ok", expect_body_regex=re.compile(r"version=\d"))
    )
    assert both.ok, both.reason
    wrong_version = await run_check(
        http(port, expect_body="ok", expect_body_regex=re.compile(r"version=4"))
    )
    assert wrong_version.reason == "http check: body does not match /version=4/"


async def test_http_check_judges_a_close_delimited_body_at_eof() -> None:
    port = await serve(http_answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall ok"))
    assert (await run_check(http(port, expect_body="all ok"))).ok


async def test_http_check_reports_a_body_cut_short() -> None:
    port = await serve(http_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
    result = await run_check(http(port, expect_body="missing"))
    assert not result.ok
    assert result.reason.startswith("http check: response body truncated: ")


# -- http: spec validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "health"}, "must start with '/'"),
        ({"path": "/a b"}, "must start with '/'"),
        ({"host_header": "a\r\nX-Evil: 1"}, "must be a non-empty host name"),
        ({"method": "POST"}, "use GET, HEAD or OPTIONS"),
        ({"expect_status": ((399, 200),)}, "range 399-200 must lie within 100-599"),
        ({"expect_status": ((200, 600),)}, "range 200-600 must lie within 100-599"),
        ({"method": "HEAD", "expect_body": "ok"}, "use GET to check expect_body"),
        ({"max_body": 0}, "max_body must be at least 1 byte"),
    ],
)
def test_http_spec_rejects_what_cannot_work(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        http(8080, **fields)


def test_spec_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="tcp check: timeout must be positive"):
        TcpCheckSpec(HOST, 80, 0)


# -- command -----------------------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def command(path: str, timeout: float = 2.0, *args: str) -> CommandCheckSpec:
    return CommandCheckSpec("127.0.0.1", 8080, timeout, path, args, backend="web", server="s2")


async def test_command_check_passes_on_exit_0(tmp_path: Path) -> None:
    result = await run_check(command(script(tmp_path, "exit 0\n")))
    assert result.ok, result.reason
    assert result.reason == "command check: exit 0"


async def test_command_check_reports_the_exit_status_and_stderr(tmp_path: Path) -> None:
    body = 'echo "progress..."\necho "database unreachable" >&2\nexit 2\n'
    result = await run_check(command(script(tmp_path, body)))
    assert not result.ok
    assert result.reason == "command check: exit 2: database unreachable"


async def test_command_check_falls_back_to_stdout_when_stderr_is_empty(tmp_path: Path) -> None:
    result = await run_check(command(script(tmp_path, 'echo "CRITICAL - 3 queued"\nexit 1\n')))
    assert result.reason == "command check: exit 1: CRITICAL - 3 queued"


async def test_command_check_keeps_only_the_end_of_a_long_stderr(tmp_path: Path) -> None:
    body = "head -c 100000 /dev/zero | tr '\\0' x >&2\necho ' last words' >&2\nexit 3\n"
    result = await run_check(command(script(tmp_path, body)))
    assert result.reason.startswith("command check: exit 3: x")
    assert result.reason.endswith("last words")
    assert len(result.reason) <= len("command check: exit 3: ") + 200


async def test_command_check_passes_arguments(tmp_path: Path) -> None:
    path = script(tmp_path, '[ "$1" = "--port" ] && [ "$2" = "8081" ]\n')
    assert (await run_check(command(path, 2.0, "--port", "8081"))).ok
    assert not (await run_check(command(path, 2.0, "--port", "9"))).ok


async def test_command_check_sees_the_server_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    names = (
        "BASCULE_SERVER_ADDRESS BASCULE_SERVER_PORT BASCULE_SERVER_NAME BASCULE_BACKEND "
        "HAPROXY_SERVER_ADDR HAPROXY_SERVER_PORT HAPROXY_SERVER_NAME HAPROXY_PROXY_NAME"
    )
    body = f'for n in {names}; do eval "echo $n=\\$$n"; done > {out}\n'
    assert (await run_check(command(script(tmp_path, body)))).ok
    assert out.read_text().split() == [
        "BASCULE_SERVER_ADDRESS=127.0.0.1",
        "BASCULE_SERVER_PORT=8080",
        "BASCULE_SERVER_NAME=s2",
        "BASCULE_BACKEND=web",
        "HAPROXY_SERVER_ADDR=127.0.0.1",
        "HAPROXY_SERVER_PORT=8080",
        "HAPROXY_SERVER_NAME=s2",
        "HAPROXY_PROXY_NAME=web",
    ]


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper (it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def test_command_check_kills_a_hanging_command_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    body = f"sleep 30 &\necho $$ $! > {pids}\nsleep 30\n"
    start = time.monotonic()
    result = await run_check(command(script(tmp_path, body), timeout=0.5))
    elapsed = time.monotonic() - start
    assert not result.ok
    assert result.reason == "command check: killed after timeout 0.5s"
    assert_ended_at_timeout(elapsed, 0.5)
    shell, child = (int(pid) for pid in pids.read_text().split())
    for _ in range(50):  # the kernel finishes a SIGKILL asynchronously
        if gone(shell) and gone(child):
            break
        await asyncio.sleep(0.01)
    assert gone(shell), f"check script {shell} survived"
    assert gone(child), f"the script's child {child} survived"


async def test_command_check_names_the_signal_that_killed_it(tmp_path: Path) -> None:
    result = await run_check(command(script(tmp_path, "kill -SEGV $$\n")))
    assert result.reason == "command check: killed by signal SIGSEGV"


async def test_command_check_reports_a_program_that_cannot_run(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    result = await run_check(command(missing))
    assert not result.ok
    assert result.reason == f"command check: cannot run {missing}: No such file or directory"


async def test_command_check_is_not_stretched_by_a_background_child(tmp_path: Path) -> None:
    # The child keeps stdout/stderr open long after the script failed.
    pid_file = tmp_path / "child"
    body = f"sleep 5 &\necho $! > {pid_file}\necho broken >&2\nexit 1\n"
    start = time.monotonic()
    try:
        result = await run_check(command(script(tmp_path, body), timeout=3.0))
        assert result.reason == "command check: exit 1: broken"
        assert time.monotonic() - start < 1.0
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# -- agent ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "ok", "state", "weight", "reason"),
    [
        (b"up\n", True, "up", None, "agent check: up"),
        (
            b"down#maintenance window\n",
            False,
            "down",
            None,
            "agent check: down (maintenance window)",
        ),
        (b"drain\n", True, "drain", None, "agent check: drain"),
        (b"maint\r\n", True, "maint", None, "agent check: maint"),
        (b"75%\n", True, None, 75, "agent check: weight 75%"),
        (b"ready 50%\n", True, "ready", 50, "agent check: ready, weight 50%"),
        (b"UP,Drain\n", True, "drain", None, "agent check: up, drain"),
        (b"stopped maint\n", False, "maint", None, "agent check: stopped, maint"),
        (b"up 80%", True, "up", 80, "agent check: up, weight 80%"),  # no line end: EOF ends it
    ],
)
async def test_agent_check_reads_the_answer_like_haproxy(
    answer: bytes, ok: bool, state: str | None, weight: int | None, reason: str
) -> None:
    port = await serve(agent(answer))
    result = await run_check(AgentCheckSpec(HOST, port, 1.0))
    assert (result.ok, result.agent_state, result.agent_weight_percent) == (ok, state, weight)
    assert result.reason == reason


async def test_agent_check_fails_on_garbage() -> None:
    port = await serve(agent(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    result = await run_check(AgentCheckSpec(HOST, port, 1.0))
    assert not result.ok
    assert result.agent_state is None
    assert result.reason == 'agent check: unrecognised answer "HTTP/1.1 400 Bad Request"'


async def test_agent_check_sends_its_string_first() -> None:
    recorder = Recorder()
    port = await serve(agent(b"ready\n", recorder, expect=len(b"web/s2\n")))
    result = await run_check(AgentCheckSpec(HOST, port, 1.0, send="web/s2\n"))
    assert result.ok, result.reason
    assert recorder.received == [b"web/s2\n"]


async def test_agent_check_fails_when_the_agent_is_silent_or_absent() -> None:
    port = await serve(silent)
    result, elapsed = await timed(AgentCheckSpec(HOST, port, 0.3))
    assert result.reason == "agent check: timeout after 0.3s"
    assert elapsed < 0.3 + SLACK
    refused = await run_check(AgentCheckSpec(HOST, closed_port(), 1.0))
    assert refused.reason == "agent check: connect refused"
    closed = await run_check(AgentCheckSpec(HOST, await serve(agent(b"")), 1.0))
    assert closed.reason == "agent check: agent closed the connection without answering"


async def test_agent_check_rejects_an_endless_line() -> None:
    port = await serve(agent(b"up " * 1000))
    result = await run_check(AgentCheckSpec(HOST, port, 1.0))
    assert result.reason == "agent check: answer longer than 512 bytes without a line end"


def test_agent_answer_keeps_the_last_word_of_each_kind_and_reports_unknown_ones() -> None:
    result = parse_agent_answer("down up 10% 20% drain ready maxconn:30")
    assert (result.ok, result.agent_state, result.agent_weight_percent) == (True, "up", 20)
    assert result.reason == 'agent check: up, ready, weight 20% (ignored "maxconn:30")'


def test_agent_answer_without_any_word_is_a_failure() -> None:
    assert parse_agent_answer("").reason == "agent check: empty answer"
    assert not parse_agent_answer("  , \t").ok


@given(st.text(max_size=80))
def test_agent_answer_parsing_never_raises_and_weights_stay_in_range(line: str) -> None:
    result = parse_agent_answer(line)
    assert result.reason.startswith("agent check: ")
    assert "\n" not in result.reason
    if result.agent_weight_percent is not None:
        assert 0 <= result.agent_weight_percent <= 25600
    if result.agent_state == "down":
        assert not result.ok


# -- dispatch and cancellation -----------------------------------------------------------------


async def test_a_cancelled_check_leaves_no_connection_behind() -> None:
    server = await TcpServer(silent).start()
    task = asyncio.ensure_future(run_check(http(server.port, timeout=5.0)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not server.tasks:
            break
        await asyncio.sleep(0.01)
    assert not server.tasks, "the server still has the check's connection open"


@pytest.mark.parametrize("kind", ["tcp", "http"])
async def test_cancelling_a_check_while_it_connects_is_not_taken_for_a_timeout(kind: str) -> None:
    blackhole = FullBacklog()
    spec = TcpCheckSpec(HOST, blackhole.port, 5.0) if kind == "tcp" else http(blackhole.port, 5.0)
    try:
        task = asyncio.ensure_future(run_check(spec))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        blackhole.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_failed_and_timed_out_checks_leave_no_socket_open() -> None:
    silent_port, garbage_port = await serve(silent), await serve(http_answer(b"\x00junk"))
    blackhole = FullBacklog()
    specs: list[CheckSpec] = [
        TcpCheckSpec(HOST, closed_port(), 0.2),
        TcpCheckSpec(HOST, blackhole.port, 0.2),
        http(blackhole.port, 0.2),
        http(silent_port, 0.2),
        http(garbage_port, 0.2),
        AgentCheckSpec(HOST, silent_port, 0.2),
    ]
    try:
        await asyncio.gather(*(run_check(spec) for spec in specs))  # warm up lazy imports
        before = open_descriptors()
        results = await asyncio.gather(*(run_check(spec) for spec in specs * 5))
        await asyncio.sleep(0.05)  # uvloop closes handles on the next loop iteration
        after = open_descriptors()
    finally:
        blackhole.close()
    assert not any(result.ok for result in results)
    assert after <= before


async def test_many_concurrent_checks_do_not_delay_each_other() -> None:
    slow = await serve(silent)
    fast = await serve(http_status(200))
    specs = [http(slow, timeout=0.5)] * 20 + [http(fast, timeout=0.5)] * 20
    start = time.monotonic()
    tasks = [asyncio.ensure_future(run_check(spec)) for spec in specs]
    fast_results = await asyncio.gather(*tasks[20:])
    assert time.monotonic() - start < 0.3  # not held up by the hanging ones
    assert all(result.ok for result in fast_results)
    assert not any(result.ok for result in await asyncio.gather(*tasks[:20]))


def test_environment_inherits_the_daemon_environment() -> None:
    os.environ.setdefault("PATH", "/usr/bin")
    assert command("/bin/true").environment()["PATH"] == os.environ["PATH"]
