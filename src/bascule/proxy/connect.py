"""Opening a TCP connection to a server, with a timeout and a classified failure."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import TypeVar, cast

from bascule.errors import LOCAL_RESOURCE_ERRNOS, LocalResourceError
from bascule.model import ServerView

# Any object with the asyncio.Protocol methods: the L7 connection classes do not subclass
# asyncio.Protocol so that mypyc can compile them as native classes (uvloop, like
# asyncio, only calls the methods).
P = TypeVar("P")


class ConnectError(Exception):
    """A connect attempt failed; `reason` is short and human ("connect refused")."""

    def __init__(self, server: ServerView, reason: str) -> None:
        super().__init__(f"{server.key} ({server.host}:{server.port}): {reason}")
        self.server = server
        self.reason = reason


def describe_os_error(exc: OSError) -> str:
    """Turn an OSError into the words an operator expects in a log."""
    names = {
        errno.ECONNREFUSED: "connect refused",
        errno.ECONNRESET: "connection reset",
        errno.EHOSTUNREACH: "host unreachable",
        errno.ENETUNREACH: "network unreachable",
        errno.ETIMEDOUT: "connect timed out",
        errno.EPIPE: "broken pipe",
        errno.EADDRNOTAVAIL: "address not available",
    }
    if exc.errno in names:
        return names[exc.errno]
    return exc.strerror or type(exc).__name__


async def open_connection(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], P],
    server: ServerView,
    timeout: float,
) -> tuple[asyncio.Transport, P]:
    """Connect to `server` within `timeout` seconds or raise ConnectError (the server's
    failure) or LocalResourceError (ours: no file descriptor, no source port...)."""
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                cast(Callable[[], asyncio.Protocol], factory), server.host, server.port
            )
    except TimeoutError:
        raise ConnectError(server, f"connect timed out after {timeout:g}s") from None
    except OSError as exc:
        if exc.errno in LOCAL_RESOURCE_ERRNOS:
            raise LocalResourceError(exc.errno) from None
        raise ConnectError(server, describe_os_error(exc)) from None
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return transport, cast(P, protocol)
