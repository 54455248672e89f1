"""The Bascule error tree.

Foreign exceptions (OSError, pydantic, yaml, httptools) are translated into
these once, at the adapter boundary. Expected outcomes such as a failed
connect or an unavailable backend are returned values or events, not
exceptions; these classes are for things a caller must act on.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Literal, TypeGuard


class BasculeError(Exception):
    """Base of every error Bascule raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file, located as precisely as we can.

    A "warning" (such as a virtual IP outside every subnet of its interface) is
    shown with that word after the path; it does not stop anything by itself.
    """

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        message = f"warning: {self.message}" if self.severity == "warning" else self.message
        text = f"{where}: {self.path}: {message}" if self.path else f"{where}: {message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(BasculeError):
    """A configuration file could not be loaded; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProtocolError(BasculeError):
    """A peer sent something that breaks HTTP; `status` is what the client should get."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class ClientProtocolError(ProtocolError):
    """The client's request is malformed or unsafe to forward (4xx)."""


class UpstreamProtocolError(ProtocolError):
    """A server's response is malformed (the client gets 502)."""

    def __init__(self, reason: str) -> None:
        super().__init__(502, reason)


class StartupError(BasculeError):
    """The daemon cannot start (address in use, missing capability, ...)."""


# errno values that say the load balancer itself ran out of something: file descriptors
# (EMFILE for the process, ENFILE for the system), kernel buffers or memory, or source
# ports for a connect (EADDRNOTAVAIL). They say nothing about the server being
# connected to, so they never count as its failure (see `LocalResourceError`).
LOCAL_RESOURCE_ERRNOS: frozenset[int] = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)


def is_local_resource_error(exc: BaseException | None) -> TypeGuard[OSError]:
    """True for an OSError that is the balancer's own shortage (LOCAL_RESOURCE_ERRNOS)."""
    return isinstance(exc, OSError) and exc.errno in LOCAL_RESOURCE_ERRNOS


_SHORTAGES: dict[int, tuple[str, str]] = {
    errno.EMFILE: (
        "out of file descriptors",
        "raise LimitNOFILE= in the systemd unit, or ulimit -n",
    ),
    errno.ENFILE: ("the system is out of file descriptors", "raise the sysctl fs.file-max"),
    errno.EADDRNOTAVAIL: (
        "no free source port",
        "widen net.ipv4.ip_local_port_range or keep connections to servers alive",
    ),
    errno.ENOBUFS: ("out of kernel socket buffers", "check memory and net.core settings"),
    errno.ENOMEM: ("out of memory", "check the memory available to bascule"),
}


class LocalResourceError(BasculeError):
    """The load balancer could not get a resource of its own (a file descriptor, a
    source port, buffers, memory) to reach a server.

    It is the balancer's problem, not the server's: never counted as a server
    failure, never retried on another server (that would need the same resource);
    the client gets 503 (HTTP) or a close (TCP). `errno_name` ("EMFILE") is what
    the counters are kept by; `reason` is what a client may read, `hint` is for the log.
    """

    def __init__(self, code: int) -> None:
        self.errno = code
        self.errno_name = errno.errorcode.get(code, str(code))
        what, self.hint = _SHORTAGES.get(code, ("out of resources", ""))
        self.reason = f"load balancer {what} ({self.errno_name})"
        super().__init__(self.reason)
