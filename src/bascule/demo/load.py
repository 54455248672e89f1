"""An open-loop HTTP load generator: requests leave at a fixed rate.

A closed-loop generator (send the next request when the previous answered)
slows down exactly when the system stalls and so hides the stall. Here each
request is scheduled at its own time whatever happened to earlier ones, and
every outcome is recorded with its send time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Outcome:
    sent_at: float  # time.monotonic()
    latency: float
    status: int  # 0 when no HTTP response
    server: str  # from X-Server, "" when unknown
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass
class LoadGenerator:
    host: str
    port: int
    rate: float
    timeout: float = 2.0
    new_connection_every: int = 5  # every Nth request opens a new connection
    max_in_flight: int = 1000
    max_idle: int = 16  # kept-alive connections reused by later requests
    outcomes: list[Outcome] = field(default_factory=list)
    _idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    _in_flight: int = 0

    async def run(self, duration: float, stop: asyncio.Event | None = None) -> None:
        """Send `rate` requests per second for `duration` seconds (or until `stop`)."""
        start = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while True:
            due = start + n / self.rate
            now = time.monotonic()
            if now - start >= duration or (stop is not None and stop.is_set()):
                break
            if due > now:
                await asyncio.sleep(due - now)
            fresh = n % self.new_connection_every == 0
            n += 1
            if self._in_flight >= self.max_in_flight:
                self.outcomes.append(Outcome(time.monotonic(), 0.0, 0, "", "too many in flight"))
                continue
            task = asyncio.create_task(self._one(fresh))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 1)
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def _one(self, fresh: bool) -> None:
        self._in_flight += 1
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                status, server = await self._request(fresh)
            self.outcomes.append(Outcome(sent, time.monotonic() - sent, status, server))
        except TimeoutError:
            self.outcomes.append(Outcome(sent, time.monotonic() - sent, 0, "", "timeout"))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.outcomes.append(Outcome(sent, time.monotonic() - sent, 0, "", _name(exc)))
        finally:
            self._in_flight -= 1

    async def _request(self, fresh: bool) -> tuple[int, str]:
        reused = self._reusable() if not fresh else None
        if reused is None:
            return await self._exchange(*await asyncio.open_connection(self.host, self.port))
        try:
            return await self._exchange(*reused)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise  # part of an answer came: a real failure, not a stale connection
            # The balancer closed this kept-alive connection while it sat idle (its
            # keep-alive timeout) just as the request left. Browsers and HTTP clients
            # send an idempotent request again on a new connection (RFC 9112 9.3.1).
            return await self._exchange(*await asyncio.open_connection(self.host, self.port))

    def _reusable(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently used idle connection the balancer has not closed."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, str]:
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: demo.local\r\nUser-Agent: bascule-demo\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head)
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close" or len(self._idle) >= self.max_idle:
            writer.close()  # keep a bounded set of kept-alive connections, like a browser
        else:
            self._idle.append((reader, writer))
        return status, headers.get("x-server", "")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _name(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed mid-response"
    return str(exc) or type(exc).__name__
