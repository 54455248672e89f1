"""TCP connects for health checks: many in flight at once, on one private epoll.

A TCP check is a connect and a reset. At 1,000 checks a second, what the event loop
adds around those two system calls (a task, a future, a poll handle registered and
removed, a timer each) costs several times the connect itself. Here a check is one
non-blocking socket registered in an epoll set that only this class reads; the loop
watches that set's single descriptor, so a burst of finished connects is one loop
callback and one `epoll_wait`. Deadlines share one timer, set for the earliest
deadline in flight, instead of one timer per check.

Sockets are reused. A finished check is reset by connecting the socket to AF_UNSPEC
(the kernel's "disconnect": it sends the reset and unbinds the port), and the same
socket, still in the epoll set, makes the next check. That saves socket(), the
SO_LINGER option, close() and the epoll registration on every check: about a third
of a TCP check's kernel time here (`bench/check_cost.py`). Python's socket module has
no call for it, so it goes through libc's connect() with ctypes; where that is not
available, each check closes its socket with a reset instead.

Why by hand: asyncio and uvloop offer no cheaper way to wait for many short-lived
sockets, and a connect-only probe needs nothing a transport provides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import socket
import struct
from collections.abc import Callable
from typing import Protocol, cast

from bascule.health.ticks import call_guarded

# Passed to `done` instead of an errno: the connect did not finish before its deadline.
TIMED_OUT = -1
# The deadline timer never fires more often than this: when deadlines crowd together
# a timeout may fire this much late, noise next to check timeouts of a second or so.
SWEEP_INTERVAL = 0.01
# Close check connections with a reset, like HAProxy does for its checks: a checker
# that closes first would otherwise keep a TIME_WAIT socket per check (60,000 a
# minute at 1,000 checks/s), and the server has nothing left to tell us anyway.
LINGER_ZERO = struct.pack("ii", 1, 0)

# Idle sockets kept per address family for the next checks; more are closed.
MAX_IDLE = 64
_ONE_SHOT_WRITE = select.EPOLLOUT | select.EPOLLONESHOT
_ONE_SHOT_READ = select.EPOLLIN | select.EPOLLONESHOT
# One recv() per readiness: a check answer is small, and probes cap what they keep.
READ_SIZE = 64 * 1024

ConnectDone = Callable[[int], None]


class Conversation(Protocol):
    """What `Connector.converse` drives: the asyncio.Protocol calls a check probe
    already answers, plus `expired` when its deadline passes (it must then close the
    transport it was given, or was never given one if `connected` is False)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def expired(self, connected: bool) -> None: ...


class _Connect:
    __slots__ = ("deadline", "done", "family", "sock", "talk", "transport")

    def __init__(
        self,
        sock: socket.socket,
        family: int,
        deadline: float,
        done: ConnectDone | None,
        talk: Conversation | None = None,
    ):
        self.sock = sock
        self.family = family
        self.deadline = deadline
        self.done = done
        self.talk = talk
        self.transport: _SocketTransport | None = None


class _SocketTransport(asyncio.Transport):
    """The little of a transport a check conversation uses, over the raw socket."""

    def __init__(self, connector: Connector, pending: _Connect) -> None:
        super().__init__()
        self._connector = connector
        self._pending = pending
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            return
        try:
            sent = self._pending.sock.send(data)
        except OSError as exc:
            self._connector.fail_soon(self._pending, exc)
            return
        if sent < len(data):  # a check sends a few hundred bytes into an empty buffer
            error = OSError(errno.EAGAIN, f"only {sent} of {len(data)} request bytes sent")
            self._connector.fail_soon(self._pending, error)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self._connector.end(self._pending)

    def close(self) -> None:
        self._connector.end(self._pending)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default  # the socket stays ours: it is reset and reused, not closed


class Connector:
    """Opens connections and reports how each ended: `done(0)` (connected, then reset),
    `done(errno)` (failed) or `done(TIMED_OUT)`; `done` is always called exactly once,
    from the event loop, never from inside `connect()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._in_flight: dict[int, _Connect] = {}
        self._idle: dict[int, list[socket.socket]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0
        self._closed = False
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def connect(
        self, family: int, address: tuple[str, int], timeout: float, done: ConnectDone
    ) -> None:
        self._start(family, address, timeout, done, None, delay_ack=True)

    def converse(
        self,
        family: int,
        address: tuple[str, int],
        timeout: float,
        talk: Conversation,
        *,
        sends_first: bool,
    ) -> None:
        """Connect, then let `talk` (a check probe) exchange bytes until it closes its
        transport or its deadline passes. Nothing is called from inside `converse()`.
        `sends_first`: `talk` writes as soon as it is connected (then the handshake's
        last ACK is held back to leave with those bytes, as HAProxy does)."""
        self._start(family, address, timeout, None, talk, delay_ack=sends_first)

    def _start(
        self,
        family: int,
        address: tuple[str, int],
        timeout: float,
        done: ConnectDone | None,
        talk: Conversation | None,
        *,
        delay_ack: bool,
    ) -> None:
        if self._closed:
            raise RuntimeError("health check connector is closed")
        idle = self._idle.get(family)
        sock = idle.pop() if idle else None
        reused = sock is not None  # then it is in the epoll set already, disarmed
        if sock is None:
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            error = self._connect(sock, address, delay_ack)
            if error not in (errno.EINPROGRESS, 0):
                self._immediate_failure(sock, family, reused, error, done, talk)
                return
            if reused:
                self._epoll.modify(sock.fileno(), _ONE_SHOT_WRITE)
            else:
                self._epoll.register(sock.fileno(), _ONE_SHOT_WRITE)
        except BaseException:
            _close(sock, False)  # never lost, never pooled in an unknown state
            raise
        deadline = self._loop.time() + timeout
        pending = self._in_flight[sock.fileno()] = _Connect(sock, family, deadline, done, talk)
        if self._sweeper is None or pending.deadline < self._sweep_at:
            self._arm_sweeper(pending.deadline)

    @staticmethod
    def _connect(sock: socket.socket, address: tuple[str, int], delay_ack: bool) -> int:
        # No quick ACK, like HAProxy: the handshake's last ACK is held back. On a pure
        # TCP check our reset goes first, so the server's kernel drops the half-open
        # connection without queueing it for accept() or waking the server process
        # (the SYN-ACK already proved the port open); when we send first, the ACK
        # leaves with our bytes. A reused socket needs it said again each time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0 if delay_ack else 1)
        try:
            return sock.connect_ex(address)
        except OSError as exc:  # e.g. a bad IPv6 scope: a gaierror, whose errno is negative
            return exc.errno if exc.errno and exc.errno > 0 else errno.EINVAL

    def _immediate_failure(
        self,
        sock: socket.socket,
        family: int,
        reused: bool,
        error: int,
        done: ConnectDone | None,
        talk: Conversation | None,
    ) -> None:
        """The kernel refused at once (no route, a firewall, no free port...)."""
        if reused:
            self._release(sock, family, False)
        else:
            _close(sock, False)  # not in the epoll set: a reuse would have to register it
        if done is not None:
            self._loop.call_soon(done, error)
        elif talk is not None:
            self._loop.call_soon(talk.connection_lost, OSError(error, os.strerror(error)))

    def close(self) -> None:
        """Abandon every connect in flight (their `done` is not called) and stop."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pending in self._in_flight.values():
            if pending.transport is not None:
                pending.transport.closing = True  # a step under way must not touch it
            _close(pending.sock, pending.transport is not None)
        self._in_flight.clear()
        for sockets in self._idle.values():
            for sock in sockets:
                sock.close()
        self._idle.clear()
        if not self._loop.is_closed():
            self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()

    def end(self, pending: _Connect) -> None:
        """A conversation is over: reset its connection and keep the socket."""
        transport = pending.transport
        if transport is not None:
            if transport.closing:
                return
            transport.closing = True
        fd = pending.sock.fileno()
        if self._in_flight.get(fd) is pending:
            del self._in_flight[fd]
            self._release(pending.sock, pending.family, transport is not None)
        # Break the pending <-> transport <-> probe cycles: freed by reference counting
        # now, not by a garbage-collector pass later.
        pending.transport = None
        pending.talk = None

    def fail_soon(self, pending: _Connect, exc: OSError) -> None:
        self._loop.call_soon(self._fail, pending, exc)

    def _fail(self, pending: _Connect, exc: OSError) -> None:
        talk = pending.talk
        if talk is not None and pending.transport is not None:  # None: already ended
            self.end(pending)
            call_guarded(talk.connection_lost, exc)

    def _on_ready(self) -> None:
        in_flight = self._in_flight
        for fd, _ in self._epoll.poll(0):
            pending = in_flight.get(fd)
            if pending is None:
                continue
            if pending.talk is not None:
                self._converse_step(pending)
                continue
            del in_flight[fd]
            sock = pending.sock
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            self._release(sock, pending.family, error == 0)
            assert pending.done is not None
            call_guarded(pending.done, error)

    def _converse_step(self, pending: _Connect) -> None:
        talk = pending.talk
        assert talk is not None
        sock = pending.sock
        transport = pending.transport
        if transport is None:  # the connect has finished
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.end(pending)
                call_guarded(talk.connection_lost, OSError(error, os.strerror(error)))
                return
            transport = pending.transport = _SocketTransport(self, pending)
            call_guarded(talk.connection_made, transport)
        else:
            try:
                data = sock.recv(READ_SIZE)
            except BlockingIOError:
                data = None
            except OSError as exc:
                self.end(pending)
                call_guarded(talk.connection_lost, exc)
                return
            if data == b"":
                call_guarded(talk.eof_received)
                if not transport.closing:
                    self.end(pending)
                    call_guarded(talk.connection_lost, None)
                return
            if data is not None:
                call_guarded(talk.data_received, data)
        if not transport.closing:
            self._epoll.modify(sock.fileno(), _ONE_SHOT_READ)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._loop.time()
        expired = [pending for pending in self._in_flight.values() if pending.deadline <= now]
        for pending in expired:
            if self._closed:
                return  # a callback closed us: nothing more to report
            if self._in_flight.get(pending.sock.fileno()) is not pending:
                continue  # ended by an earlier callback of this sweep
            talk = pending.talk
            if talk is not None:
                call_guarded(talk.expired, pending.transport is not None)
                self.end(pending)  # in case the conversation did not close it
                continue
            del self._in_flight[pending.sock.fileno()]
            self._release(pending.sock, pending.family, False)  # aborts the connect
            assert pending.done is not None
            call_guarded(pending.done, TIMED_OUT)
        if self._in_flight and not self._closed:
            # Most connects end long before their deadline, so this timer usually
            # finds nothing to do and sleeps until the oldest one still in flight.
            earliest = max(
                min(pending.deadline for pending in self._in_flight.values()),
                now + SWEEP_INTERVAL,
            )
            if self._sweeper is None or earliest < self._sweep_at:  # a callback may have armed it
                self._arm_sweeper(earliest)

    def _arm_sweeper(self, when: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_at = when
        self._sweeper = self._loop.call_at(when, self._sweep)

    def _release(self, sock: socket.socket, family: int, connected: bool) -> None:
        """Reset the socket's connection; keep the socket for another check if we can."""
        idle = self._idle.setdefault(family, [])
        if len(idle) < MAX_IDLE and _disconnect(sock):
            idle.append(sock)
        else:
            _close(sock, connected)


def _close(sock: socket.socket, connected: bool) -> None:
    if connected:
        with contextlib.suppress(OSError):  # already reset by the peer: nothing to send
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    sock.close()


def _load_libc_connect() -> Callable[[int, bytes, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        connect = libc.connect
    except (OSError, AttributeError):
        return None
    connect.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    connect.restype = ctypes.c_int
    return cast(Callable[[int, bytes, int], int], connect)


_libc_connect = _load_libc_connect()
# A sockaddr whose family is AF_UNSPEC (0): connect() to it disconnects a TCP socket.
_UNSPEC_ADDRESS = bytes(16)


def _disconnect(sock: socket.socket) -> bool:
    """Reset the socket's connection (or abort its connect) and make it reusable."""
    if _libc_connect is None:
        return False
    return _libc_connect(sock.fileno(), _UNSPEC_ADDRESS, len(_UNSPEC_ADDRESS)) == 0
