"""The Bascule error tree.

Foreign exceptions (OSError, pydantic, yaml, httptools) are translated into
these once, at the adapter boundary. Expected outcomes such as a failed
connect or an unavailable backend are returned values or events, not
exceptions; these classes are for things a caller must act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
