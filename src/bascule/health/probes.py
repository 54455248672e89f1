"""Active health-check probes: one asyncio check of one server, returned as a `CheckResult`.

This module owns the four probe kinds of the `check.type` setting (`tcp`, `http`,
`command`, `agent`), the frozen specs that describe one server's check, and the
parsing of HAProxy agent-check answers. A probe never raises for anything a sick
server can do (refuse, reset, hang, dribble, send garbage or an endless body, exit
non-zero): it returns a failed `CheckResult` whose reason says what happened.
Every probe is bounded in time (its spec's `timeout`) and in memory (a fixed
budget per kind), so a broken server cannot stall the checker or grow it.

Probes are raw asyncio protocols rather than streams or an HTTP client library:
1,000 servers checked every second must cost under 10% of a core, and a protocol
costs one small object per check (no reader task, no stream buffers). See
`bench/check_cost.py` for what a check costs.
Scheduling (interval, jitter, rise/fall) is not here: see `state.py` and
`runner.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar, Literal, TypeVar, assert_never, cast

import httptools

from bascule.errors import LOCAL_RESOURCE_ERRNOS, LocalResourceError, is_local_resource_error
from bascule.health.connector import LINGER_ZERO, TIMED_OUT, Connector
from bascule.health.results import AgentState, CheckResult
from bascule.proxy.connect import describe_os_error
from bascule.proxy.http_policy import server_host_header

# A response head (status line + headers) larger than this is not a health answer.
MAX_RESPONSE_HEAD = 16 * 1024
# HAProxy reads the agent's answer into one check buffer; one short line is all it may be.
MAX_AGENT_ANSWER = 512
# How much of a failing command's output ends up in the check's reason.
COMMAND_OUTPUT_TAIL = 200
# After a command exits non-zero, wait this long at most for the rest of its output
# (a background grandchild may keep the pipes open forever).
COMMAND_OUTPUT_GRACE = 0.1
# After SIGKILL, wait this long at most for the process to be reaped.
COMMAND_KILL_GRACE = 1.0
# Longest quoted excerpt of a peer's bytes in a reason (keeps events one readable line).
EXCERPT_CHARS = 60

T = TypeVar("T")
HttpMethod = Literal["GET", "HEAD", "OPTIONS"]
_HTTP_METHODS = ("GET", "HEAD", "OPTIONS")
_UNSAFE_IN_REQUEST = re.compile(r"[^\x21-\x7e]")  # anything but visible ASCII


# -- specs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpCheckSpec:
    """Connect to host:port within `timeout` seconds, then close."""

    type: ClassVar[str] = "tcp"

    host: str
    port: int
    timeout: float
    # AF_INET or AF_INET6 when `host` is an address literal, 0 for a name to resolve.
    family: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_target(self.type, self.host, self.port, self.timeout)
        object.__setattr__(self, "family", _address_family(self.host))


@dataclass(frozen=True, slots=True)
class HttpCheckSpec:
    """Send one HTTP/1.1 request and judge the status and, optionally, the body.

    `expect_status` holds inclusive (low, high) ranges: `((200, 399),)` is "200-399",
    `((200, 200), (204, 204))` is "200, 204". `host_header` defaults to host:port
    (the port is left out when it is 80). `expect_body` is a substring and
    `expect_body_regex` a compiled pattern searched in the body decoded as UTF-8;
    only the first `max_body` bytes are read.
    """

    type: ClassVar[str] = "http"

    host: str
    port: int
    timeout: float
    path: str = "/"
    method: HttpMethod = "GET"
    host_header: str | None = None
    expect_status: tuple[tuple[int, int], ...] = ((200, 399),)
    expect_body: str | None = None
    expect_body_regex: re.Pattern[str] | None = None
    max_body: int = 64 * 1024
    # Built once per spec: the bytes sent on every check, and the expected statuses as
    # users wrote them (for reasons).
    request: bytes = field(init=False, repr=False, compare=False)
    expected_status_text: str = field(init=False, repr=False, compare=False)
    family: int = field(init=False, repr=False, compare=False)  # as in TcpCheckSpec

    def __post_init__(self) -> None:
        _check_target(self.type, self.host, self.port, self.timeout)
        object.__setattr__(self, "family", _address_family(self.host))
        self._check_request_fields()
        self._check_expectations()
        host_header = self.host_header or server_host_header(self.host, self.port)
        request = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {host_header}\r\n"
            "User-Agent: bascule-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        object.__setattr__(self, "request", request.encode("ascii"))
        object.__setattr__(self, "expected_status_text", _ranges_text(self.expect_status))

    @property
    def reads_body(self) -> bool:
        return self.expect_body is not None or self.expect_body_regex is not None

    def _check_request_fields(self) -> None:
        if self.method not in _HTTP_METHODS:
            raise ValueError(
                f"http check: method {self.method!r} is not supported; use GET, HEAD or OPTIONS"
            )
        if not self.path.startswith("/") or _UNSAFE_IN_REQUEST.search(self.path):
            raise ValueError(
                f"http check: path {self.path!r} must start with '/' and contain no spaces, "
                "control or non-ASCII characters (percent-encode them)"
            )
        if self.host_header is not None and (
            not self.host_header or _UNSAFE_IN_REQUEST.search(self.host_header)
        ):
            raise ValueError(
                f"http check: host {self.host_header!r} must be a non-empty host name "
                "without spaces, control or non-ASCII characters"
            )

    def _check_expectations(self) -> None:
        if not self.expect_status:
            raise ValueError("http check: expect_status needs at least one code or range")
        for low, high in self.expect_status:
            if not 100 <= low <= high <= 599:
                raise ValueError(
                    f"http check: expected status range {low}-{high} must lie within 100-599 "
                    "with the low end first"
                )
        if self.max_body < 1:
            raise ValueError(f"http check: max_body must be at least 1 byte, not {self.max_body}")
        if self.method == "HEAD" and self.reads_body:
            raise ValueError(
                "http check: a HEAD response has no body; use GET to check expect_body"
            )


@dataclass(frozen=True, slots=True)
class CommandCheckSpec:
    """Run `path` with `args` (no shell); exit status 0 means healthy.

    `host`/`port` and the `backend`/`server` names reach the program through the
    environment (see `environment()`); the daemon's own environment is inherited.
    """

    type: ClassVar[str] = "command"

    host: str
    port: int
    timeout: float
    path: str
    args: tuple[str, ...] = ()
    backend: str = ""
    server: str = ""

    def __post_init__(self) -> None:
        _check_target(self.type, self.host, self.port, self.timeout)
        if not self.path:
            raise ValueError("command check: path to the program is empty")

    def environment(self) -> dict[str, str]:
        """The daemon's environment plus the server's identity, under our names and
        HAProxy's external-check names (so its scripts run unchanged)."""
        port = str(self.port)
        return {
            **os.environ,
            "BASCULE_SERVER_ADDRESS": self.host,
            "BASCULE_SERVER_PORT": port,
            "BASCULE_SERVER_NAME": self.server,
            "BASCULE_BACKEND": self.backend,
            "HAPROXY_SERVER_ADDR": self.host,
            "HAPROXY_SERVER_PORT": port,
            "HAPROXY_SERVER_NAME": self.server,
            "HAPROXY_PROXY_NAME": self.backend,
        }


@dataclass(frozen=True, slots=True)
class AgentCheckSpec:
    """Ask an HAProxy-style agent on host:port (the agent's port, not the server's).

    `send` is written right after connecting (HAProxy `agent-send`), then one line
    is read and parsed by `parse_agent_answer`.
    """

    type: ClassVar[str] = "agent"

    host: str
    port: int
    timeout: float
    send: str = ""
    send_bytes: bytes = field(init=False, repr=False, compare=False)
    family: int = field(init=False, repr=False, compare=False)  # as in TcpCheckSpec

    def __post_init__(self) -> None:
        _check_target(self.type, self.host, self.port, self.timeout)
        object.__setattr__(self, "family", _address_family(self.host))
        object.__setattr__(self, "send_bytes", self.send.encode("utf-8"))


CheckSpec = TcpCheckSpec | HttpCheckSpec | CommandCheckSpec | AgentCheckSpec


def _check_target(kind: str, host: str, port: int, timeout: float) -> None:
    if not host:
        raise ValueError(f"{kind} check: host is empty")
    if not 1 <= port <= 65535:
        raise ValueError(f"{kind} check: port {port} is outside 1-65535")
    if not timeout > 0:
        raise ValueError(f"{kind} check: timeout must be positive, not {timeout}")


def _address_family(host: str) -> int:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return 0
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _ranges_text(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


# -- dispatch ------------------------------------------------------------------------------


async def run_check(spec: CheckSpec) -> CheckResult:
    """Run the check `spec` describes once; `duration` is seconds from start to verdict.

    Raises only on a bug in this module or on cancellation (the caller stopping the
    check); everything a server can do wrong is a failed `CheckResult`.
    """
    if isinstance(spec, _ON_CONNECTOR) and spec.family:
        return await _alone_on_a_connector(spec)
    if isinstance(spec, HttpCheckSpec):
        return await http_check(spec)
    if isinstance(spec, TcpCheckSpec):
        return await tcp_check(spec)
    if isinstance(spec, AgentCheckSpec):
        return await agent_check(spec)
    if isinstance(spec, CommandCheckSpec):
        return await command_check(spec)
    assert_never(spec)


_ON_CONNECTOR = (TcpCheckSpec, HttpCheckSpec, AgentCheckSpec)


def start_check(
    connector: Connector, spec: CheckSpec, on_result: Callable[[CheckResult], None]
) -> bool:
    """Start the check on `connector` without a task, if it can run there: a TCP,
    HTTP or agent check of an address literal. False (and nothing started) for a
    host name to resolve or a command: run those with `run_check` in a task."""
    if not isinstance(spec, _ON_CONNECTOR) or not spec.family:
        return False
    if isinstance(spec, TcpCheckSpec):
        start_tcp_check(connector, spec, on_result)
    elif isinstance(spec, HttpCheckSpec):
        http_probe = _http_probe(spec)
        _converse_on(
            connector, spec, http_probe, lambda *v: on_result(_http_result(http_probe, *v))
        )
    else:
        agent_probe = _agent_probe(spec)
        _converse_on(
            connector, spec, agent_probe, lambda *v: on_result(_agent_result(agent_probe, *v))
        )
    return True


async def _alone_on_a_connector(spec: TcpCheckSpec | HttpCheckSpec | AgentCheckSpec) -> CheckResult:
    """`start_check` on a connector of its own, for one check awaited by itself."""
    loop = asyncio.get_running_loop()
    connector = Connector(loop)
    outcome: asyncio.Future[CheckResult] = loop.create_future()
    try:
        start_check(connector, spec, partial(_resolve, outcome))
        return await outcome
    finally:
        connector.close()


def _timeout_text(timeout: float) -> str:
    return f"{timeout:g}s"


def _connect_failure(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host}: {exc.strerror or exc}"
    if exc.errno is None:
        # A name with several addresses that all failed: the loop sums them up as
        # "Multiple exceptions: [Errno 111] Connect call failed ('::1', ...), ...".
        return str(exc).replace("\n", " ")
    return describe_os_error(exc)


def _discard(transport: asyncio.Transport) -> None:
    """Close a check connection at once, with a reset (see `connector.LINGER_ZERO`)."""
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    transport.abort()


# -- tcp ----------------------------------------------------------------------------------

_TCP_OK = "tcp check: connected"


async def tcp_check(spec: TcpCheckSpec) -> CheckResult:
    """Healthy when a TCP connection to host:port opens within the timeout: for a host
    name, resolved by the loop at every check (addresses go through `start_check`)."""
    start = time.monotonic()
    try:
        failure = await _connect_and_close_by_name(spec)
    except LocalResourceError as error:
        return _tcp_result(spec, error.reason, time.monotonic() - start, local_error=True)
    return _tcp_result(spec, failure, time.monotonic() - start)


def start_tcp_check(
    connector: Connector, spec: TcpCheckSpec, on_result: Callable[[CheckResult], None]
) -> None:
    """Start a TCP check of an address literal (`spec.family` set) on `connector`;
    `on_result` gets its verdict later, from the event loop."""
    start = time.monotonic()

    def done(error: int) -> None:
        duration = time.monotonic() - start
        if error in LOCAL_RESOURCE_ERRNOS:
            reason = LocalResourceError(error).reason
            on_result(_tcp_result(spec, reason, duration, local_error=True))
        else:
            on_result(_tcp_result(spec, _connect_error_text(spec, error), duration))

    connector.connect(spec.family, (spec.host, spec.port), spec.timeout, done)


def _tcp_result(
    spec: TcpCheckSpec, failure: str | None, duration: float, *, local_error: bool = False
) -> CheckResult:
    if failure is None:
        return CheckResult(True, _TCP_OK, duration)
    return CheckResult(False, f"tcp check: {failure}", duration, local_error=local_error)


def _connect_error_text(spec: TcpCheckSpec, error: int) -> str | None:
    if error == 0:
        return None
    if error == TIMED_OUT:
        return f"connect timeout after {_timeout_text(spec.timeout)}"
    return describe_os_error(OSError(error, os.strerror(error)))


async def _connect_and_close_by_name(spec: TcpCheckSpec) -> str | None:
    """The same for a host name: the loop resolves it (every check, so DNS changes
    are followed) and connects to the first address that answers."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(spec.timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, spec.host, spec.port)
    except TimeoutError:
        return f"connect timeout after {_timeout_text(spec.timeout)}"
    except OSError as exc:
        if is_local_resource_error(exc):
            raise LocalResourceError(exc.errno or 0) from None
        return _connect_failure(exc, spec.host)
    _discard(transport)
    return None


# -- connection-based probes (http, agent) -------------------------------------------------


class _ConnectionProbe(asyncio.Protocol):
    """A check conversation on one connection that ends in one verdict.

    The verdict is None (healthy) or a failure sentence without the "<type> check: "
    prefix; `on_verdict` gets it once, right after the connection is reset. Anything
    still arriving afterwards is ignored.
    """

    __slots__ = (
        "bytes_received",
        "connect_timed_out",
        "decided",
        "local_error",
        "on_verdict",
        "timeout",
        "transport",
    )

    def __init__(self) -> None:
        self.decided = False
        self.on_verdict: Callable[[str | None], None] | None = None  # set by the starter
        self.transport: asyncio.Transport | None = None
        self.bytes_received = 0
        self.connect_timed_out = False
        self.local_error = False  # it failed for want of a resource of ours: no verdict
        self.timeout = 0.0  # set by whoever starts the conversation

    def expired(self, connected: bool) -> None:
        """The deadline passed (a `Connector` conversation)."""
        if connected:
            self.decide(self.timeout_reason(self.timeout))
        else:
            self.decide(f"connect timeout after {_timeout_text(self.timeout)}")

    def decide(self, failure: str | None) -> None:
        if self.decided:
            return
        self.decided = True
        if self.transport is not None:
            _discard(self.transport)
        if self.on_verdict is not None:
            self.on_verdict(failure)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.decided:
            return  # the usual case: we closed it after the verdict
        if is_local_resource_error(exc):
            self.decide(self.failed_locally(exc))
        elif isinstance(exc, OSError):
            self.decide(describe_os_error(exc))
        else:
            self.decide(self.closed_early_reason())

    def failed_locally(self, exc: OSError) -> str:
        """Mark the check as one that could not run (see CheckResult.local_error)."""
        self.local_error = True
        return LocalResourceError(exc.errno or 0).reason

    def release(self) -> None:
        """Drop the references that make cycles (probe <-> transport, probe <-> parser),
        so a finished check is freed by reference counting at once: cycles would leave
        it to the garbage collector, whose passes cost ~10% of the checker's CPU."""
        self.transport = None
        self.on_verdict = None

    def closed_early_reason(self) -> str:
        if self.bytes_received == 0:
            return "server closed the connection without answering"
        return f"server closed the connection after {self.bytes_received} bytes"

    def timeout_reason(self, timeout: float) -> str:
        return f"timeout after {_timeout_text(timeout)}"


async def _converse(
    spec: HttpCheckSpec | AgentCheckSpec, probe: _ConnectionProbe
) -> tuple[str | None, float]:
    """Connect `probe` to the spec's target and wait for its verdict within the timeout.

    Returns (failure or None, duration). The timeout is one loop timer rather than
    `asyncio.timeout` (half the cost, which counts at 1,000 checks a second): once
    connected it simply decides the probe; only a connect still in progress needs
    the task cancelled.
    """
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    task = asyncio.current_task()
    assert task is not None, "a check runs in a task"
    expiry = loop.call_at(loop.time() + spec.timeout, _expire, probe, task, spec.timeout)
    transport: asyncio.Transport | None = None
    verdict: asyncio.Future[str | None] = loop.create_future()
    probe.on_verdict = partial(_resolve, verdict)
    try:
        transport, _ = await loop.create_connection(lambda: probe, spec.host, spec.port)
        failure = await verdict
    except asyncio.CancelledError:
        # Ours only if the connect timed out and nobody else cancelled the task too.
        if not probe.connect_timed_out or task.uncancel() > 0:
            raise
        failure = f"connect timeout after {_timeout_text(spec.timeout)}"
    except OSError as exc:
        local = is_local_resource_error(exc)
        failure = probe.failed_locally(exc) if local else _connect_failure(exc, spec.host)
    finally:
        expiry.cancel()
        # Also reached on cancellation: never leave a check connection open.
        if transport is not None:
            _discard(transport)
        elif probe.transport is not None:
            _discard(probe.transport)
        probe.release()
    return failure, time.monotonic() - start


VerdictSink = Callable[[str | None, float], None]


def _converse_on(
    connector: Connector,
    spec: HttpCheckSpec | AgentCheckSpec,
    probe: _ConnectionProbe,
    on_verdict: VerdictSink,
) -> None:
    """Run `probe` on `connector` (the target is an address literal); `on_verdict`
    gets (failure or None, duration) from the event loop. No task, no transport."""
    start = time.monotonic()

    def finished(failure: str | None) -> None:
        probe.release()
        on_verdict(failure, time.monotonic() - start)

    probe.timeout = spec.timeout
    probe.on_verdict = finished
    sends_first = isinstance(spec, HttpCheckSpec) or bool(spec.send_bytes)
    connector.converse(
        spec.family, (spec.host, spec.port), spec.timeout, probe, sends_first=sends_first
    )


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # it is cancelled when the check was
        future.set_result(value)


def _expire(probe: _ConnectionProbe, task: asyncio.Task[object], timeout: float) -> None:
    if probe.decided:
        return
    if probe.transport is None:
        probe.connect_timed_out = True
        task.cancel()
    else:
        probe.decide(probe.timeout_reason(timeout))


# -- http ---------------------------------------------------------------------------------


class _HttpProbe(_ConnectionProbe):
    """Sends the spec's request and judges the status as soon as the head is in.

    The head is capped at MAX_RESPONSE_HEAD. This class has no header or body
    callbacks on purpose: httptools only calls back into Python for the callbacks a
    protocol defines, so a status-only check pays nothing per header or body chunk.
    """

    __slots__ = ("head_complete", "parser", "spec", "status")

    def __init__(self, spec: HttpCheckSpec) -> None:
        super().__init__()
        self.spec = spec
        self.head_complete = False
        self.status = 0
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        cast(asyncio.Transport, transport).write(self.spec.request)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self.decided or parser is None:
            return
        self.bytes_received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.decide(f"malformed response: {_parser_reason(exc)}")
            return
        if not self.head_complete and self.bytes_received > MAX_RESPONSE_HEAD:
            self.decide(f"malformed response: head larger than {MAX_RESPONSE_HEAD} bytes")

    def eof_received(self) -> bool:
        if not self.decided:
            self.decide(self.closed_early_reason())
        return False

    def release(self) -> None:
        super().release()
        self.parser = None

    def timeout_reason(self, timeout: float) -> str:
        text = super().timeout_reason(timeout)
        if self.bytes_received == 0:
            return text
        stage = "body" if self.head_complete else "head"
        return f"{text} (response {stage} incomplete, {self.bytes_received} bytes received)"

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # it is calling us
        status: int = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response (100 Continue...): the real one follows
        self.head_complete = True
        self.status = status
        if not any(low <= status <= high for low, high in self.spec.expect_status):
            self.decide(f"status {status} (expected {self.spec.expected_status_text})")
        else:
            self.on_status_expected()

    def on_status_expected(self) -> None:
        self.decide(None)


class _HttpBodyProbe(_HttpProbe):
    """Also judges the body: keeps at most `max_body` bytes of it, searches the
    substring as they arrive and decides as soon as the answer is known."""

    __slots__ = ("body", "body_truncated", "framed", "searched_up_to", "substring_found")

    def __init__(self, spec: HttpCheckSpec) -> None:
        self.framed = False  # Content-Length or chunked: EOF before the end means truncated
        self.body = bytearray()
        self.body_truncated = False
        self.searched_up_to = 0
        self.substring_found = spec.expect_body is None
        super().__init__(spec)

    def eof_received(self) -> bool:
        if self.decided:
            return False
        if not self.head_complete:
            self.decide(self.closed_early_reason())
        elif self.framed:
            self.decide(f"response body truncated: {self.closed_early_reason()}")
        else:
            self.decide(self._judge_body())  # a close-delimited body ends here
        return False

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_status_expected(self) -> None:
        pass  # the body decides

    def on_body(self, chunk: bytes) -> None:
        if self.decided:
            return
        room = self.spec.max_body - len(self.body)
        if len(chunk) >= room:
            self.body += chunk[:room]
            self.body_truncated = True
            self.decide(self._judge_body())
            return
        self.body += chunk
        if self._search_substring() and self.spec.expect_body_regex is None:
            self.decide(None)  # found early: no need to read the rest

    def on_message_complete(self) -> None:
        if self.head_complete:
            self.decide(self._judge_body())

    # judging --------------------------------------------------------------------------

    def _search_substring(self) -> bool:
        expected = self.spec.expect_body
        if self.substring_found or expected is None:
            return True
        needle = expected.encode("utf-8")
        # Search only the new bytes (plus an overlap for a needle split across chunks),
        # so a body arriving in many small pieces costs linear time, not quadratic.
        start = max(0, self.searched_up_to - len(needle) + 1)
        self.searched_up_to = len(self.body)
        self.substring_found = self.body.find(needle, start) >= 0
        return self.substring_found

    def _judge_body(self) -> str | None:
        spec = self.spec
        if spec.expect_body is not None and not self._search_substring():
            return f'body does not contain "{_excerpt(spec.expect_body)}"{self._read_note()}'
        pattern = spec.expect_body_regex
        if pattern is not None and not pattern.search(self.body.decode("utf-8", "replace")):
            return f"body does not match /{_excerpt(pattern.pattern)}/{self._read_note()}"
        return None

    def _read_note(self) -> str:
        if self.body_truncated:
            return f" (read only the first {self.spec.max_body} bytes, max_body)"
        return ""


def _parser_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return _excerpt(text)


async def http_check(spec: HttpCheckSpec) -> CheckResult:
    """Healthy when the response status is expected and the body matches (if asked);
    for a host name (addresses go through `start_check`)."""
    probe = _http_probe(spec)
    return _http_result(probe, *await _converse(spec, probe))


def _http_probe(spec: HttpCheckSpec) -> _HttpProbe:
    return _HttpBodyProbe(spec) if spec.reads_body else _HttpProbe(spec)


def _http_result(probe: _HttpProbe, failure: str | None, duration: float) -> CheckResult:
    if failure is None:
        return CheckResult(True, f"http check: status {probe.status}", duration)
    return CheckResult(False, f"http check: {failure}", duration, local_error=probe.local_error)


# -- agent --------------------------------------------------------------------------------


_LINE_END = re.compile(rb"[\r\n]")


class _AgentProbe(_ConnectionProbe):
    """Sends `send` (if any) and collects the agent's one-line answer."""

    __slots__ = ("answer", "send")

    def __init__(self, send: bytes) -> None:
        super().__init__()
        self.send = send
        self.answer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.send:
            cast(asyncio.Transport, transport).write(self.send)

    def data_received(self, data: bytes) -> None:
        if self.decided:
            return
        self.bytes_received += len(data)
        self.answer += data[: MAX_AGENT_ANSWER + 1 - len(self.answer)]
        line_end = _LINE_END.search(self.answer)
        if line_end is not None:
            del self.answer[line_end.start() :]
            self.decide(None)
            return
        if len(self.answer) > MAX_AGENT_ANSWER:
            self.decide(f"answer longer than {MAX_AGENT_ANSWER} bytes without a line end")

    def eof_received(self) -> bool:
        # HAProxy ignores a last line without CR/LF; we accept it, as its manual says
        # the terminator is optional and simple agents (`echo -n up | nc -l`) omit it.
        if self.decided:
            return False
        if self.answer:
            self.decide(None)
        else:
            self.decide("agent closed the connection without answering")
        return False


async def agent_check(spec: AgentCheckSpec) -> CheckResult:
    """Ask the agent and turn its answer into a result (see `parse_agent_answer`); for a
    host name (addresses go through `start_check`)."""
    probe = _agent_probe(spec)
    return _agent_result(probe, *await _converse(spec, probe))


def _agent_probe(spec: AgentCheckSpec) -> _AgentProbe:
    return _AgentProbe(spec.send_bytes)


def _agent_result(probe: _AgentProbe, failure: str | None, duration: float) -> CheckResult:
    if failure is not None:
        return CheckResult(
            False, f"agent check: {failure}", duration, local_error=probe.local_error
        )
    return parse_agent_answer(probe.answer.decode("utf-8", "replace"), duration)


_AGENT_HEALTH_WORDS: dict[str, AgentState] = {
    "up": "up",
    "down": "down",
    "stopped": "down",
    "fail": "down",
    "failed": "down",
}
_AGENT_ADMIN_WORDS: dict[str, AgentState] = {"ready": "ready", "drain": "drain", "maint": "maint"}
# One answer may carry a health word and an admin word, but a CheckResult has one
# agent_state: keep the strongest, the way the server state machine ranks them
# (MAINT wins over everything, DOWN over DRAIN).
_AGENT_STATE_RANK: dict[AgentState, int] = {"maint": 4, "down": 3, "drain": 2, "up": 1, "ready": 0}
_AGENT_WORD_SEPARATORS = re.compile(r"[ \t,]+")
_AGENT_WEIGHT = re.compile(r"[0-9]+%")
# HAProxy clamps relative weights at 25600% to avoid overflowing; so do we.
_AGENT_MAX_WEIGHT_PERCENT = 25600


def parse_agent_answer(line: str, duration: float = 0.0) -> CheckResult:
    """Read one agent answer the way HAProxy's agent-check does.

    Words are separated by spaces, tabs or commas and are case-insensitive: a
    health word (`up`; `down`, `stopped`, `fail`/`failed` = down), an admin word
    (`ready`, `drain`, `maint`), a weight `75%`. Of several words of one kind, the
    last wins. Text after `#` is a description shown in the reason. Unknown words
    are reported but ignored; an answer with no known word at all is a failed check.
    Unlike HAProxy, `#` also starts the description when glued to a word (`down#why`).
    """
    words_part, _, description = line.partition("#")
    health: AgentState | None = None
    admin: AgentState | None = None
    weight: int | None = None
    said: dict[str, str] = {}  # kind -> the word as the agent said it, for the reason
    unknown: list[str] = []
    for word in _AGENT_WORD_SEPARATORS.split(words_part.strip(" \t,")):
        lowered = word.lower()
        if lowered in _AGENT_HEALTH_WORDS:
            health, said["health"] = _AGENT_HEALTH_WORDS[lowered], lowered
        elif lowered in _AGENT_ADMIN_WORDS:
            admin, said["admin"] = _AGENT_ADMIN_WORDS[lowered], lowered
        elif _AGENT_WEIGHT.fullmatch(word):
            weight = min(int(word[:-1]), _AGENT_MAX_WEIGHT_PERCENT)
            said["weight"] = f"weight {weight}%"
        elif word:
            unknown.append(word)
    if not said:
        what = f'unrecognised answer "{_excerpt(line)}"' if line.strip() else "empty answer"
        return CheckResult(False, f"agent check: {what}", duration)
    reason = _agent_reason(said, description.strip(), unknown)
    return CheckResult(health != "down", reason, duration, _strongest(health, admin), weight)


def _strongest(health: AgentState | None, admin: AgentState | None) -> AgentState | None:
    if health is None or admin is None:
        return health or admin
    return health if _AGENT_STATE_RANK[health] > _AGENT_STATE_RANK[admin] else admin


def _agent_reason(said: dict[str, str], description: str, unknown: list[str]) -> str:
    """ "agent check: stopped, maint, weight 50% (reason) (ignored "junk")"."""
    reason = "agent check: " + ", ".join(
        said[kind] for kind in ("health", "admin", "weight") if kind in said
    )
    if description:
        reason += f" ({_excerpt(description)})"
    if unknown:
        reason += f' (ignored "{_excerpt(" ".join(unknown))}")'
    return reason


# -- command ------------------------------------------------------------------------------


class _CommandProbe(asyncio.SubprocessProtocol):
    """Keeps the last bytes of a check program's output and notes when it ends."""

    __slots__ = ("exited", "finished", "stderr_tail", "stdout_tail")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # exited and pipes closed
        self.stdout_tail = b""
        self.stderr_tail = b""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        # Keep a bounded tail: a chatty or endless program costs CPU until the timeout
        # kills it, never memory.
        if fd == 2:
            self.stderr_tail = (self.stderr_tail + data[-COMMAND_OUTPUT_TAIL:])[
                -COMMAND_OUTPUT_TAIL:
            ]
        else:
            self.stdout_tail = (self.stdout_tail + data[-COMMAND_OUTPUT_TAIL:])[
                -COMMAND_OUTPUT_TAIL:
            ]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def output_tail(self) -> str:
        """The end of stderr, or of stdout when stderr is empty, as one short line."""
        tail = self.stderr_tail.strip() or self.stdout_tail.strip()
        text = tail.decode("utf-8", "replace")
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())


async def command_check(spec: CommandCheckSpec) -> CheckResult:
    """Healthy when the program exits 0 within the timeout."""
    return await run_program(
        spec.path, spec.args, spec.environment(), spec.timeout, what="command check"
    )


async def run_program(
    path: str, args: Sequence[str], env: Mapping[str, str], timeout: float, *, what: str
) -> CheckResult:
    """Run `path` with `args` (no shell); passed when it exits 0 within `timeout`.

    `what` starts the reason text ("command check: exit 1: no quorum"). The program
    runs in its own session, so on timeout SIGKILL reaches its whole process group
    (children it started included), not just the program itself. Used by command
    checks and by VRRP track scripts.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()  # the loop's clock: deadlines
    began = time.monotonic()  # finer than the loop's clock (milliseconds): durations
    probe = _CommandProbe(loop)
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: probe,
            path,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        local = is_local_resource_error(exc)  # no pipe or process for it: no verdict
        why = LocalResourceError(exc.errno or 0).reason if local else exc.strerror or exc
        reason = f"{what}: cannot run {path}: {why}"
        return CheckResult(False, reason, time.monotonic() - began, local_error=local)
    try:
        failure = await _wait_for_command(transport, probe, timeout, start)
    finally:
        # Also reached on cancellation: kill leftovers of an unfinished run.
        if transport.get_returncode() is None:
            _kill_process_group(transport.get_pid())
        transport.close()
    if failure is None:
        return CheckResult(True, f"{what}: exit 0", time.monotonic() - began)
    return CheckResult(False, f"{what}: {failure}", time.monotonic() - began)


async def _wait_for_command(
    transport: asyncio.SubprocessTransport,
    probe: _CommandProbe,
    timeout: float,
    start: float,
) -> str | None:
    loop = asyncio.get_running_loop()
    if not await _completes_before(probe.exited, start + timeout):
        _kill_process_group(transport.get_pid())
        await _completes_before(probe.exited, loop.time() + COMMAND_KILL_GRACE)
        return f"killed after timeout {_timeout_text(timeout)}"
    code = transport.get_returncode()
    if code == 0:
        return None
    # Let the last output arrive, but a background child holding the pipes open must
    # not stretch the check.
    await _completes_before(
        probe.finished, min(start + timeout, loop.time() + COMMAND_OUTPUT_GRACE)
    )
    return _exit_text(code, probe.output_tail())


async def _completes_before(future: asyncio.Future[None], deadline: float) -> bool:
    """Wait for `future` until `deadline`; True if it completed. Unlike a plain await
    under a timeout, this never cancels `future`, so it can be waited for again."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            await asyncio.shield(future)
    return future.done()


def _exit_text(code: int | None, output: str) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        text = f"killed by signal {name}"
    else:
        text = f"exit {code}"
    return f"{text}: {output}" if output else text


def _kill_process_group(pid: int) -> None:
    # The program leads its own process group (start_new_session), so its pid is
    # the group id; the group may already be gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# -- shared text helpers ------------------------------------------------------------------


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _excerpt(text: str) -> str:
    """`text` made safe for a one-line reason: control characters escaped, cut short."""
    printable = _CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(printable) > EXCERPT_CHARS:
        return printable[: EXCERPT_CHARS - 3] + "..."
    return printable
