"""What one health check observed (pure data, shared by probes and state machines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AgentState = Literal["up", "down", "drain", "maint", "ready"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one active check of one server.

    `reason` is the human sentence that ends up in events, prefixed by the check type:
    "http check: status 500 (expected 200-399)", "tcp check: connect refused",
    "http check: timeout after 1s". `duration` is seconds from start to verdict.
    Agent checks may also carry a state and/or a weight percentage; an agent answer
    that only sets a weight is `ok=True`.
    `local_error`: the check could not run for want of a resource of the balancer's
    own (EMFILE, ENOBUFS...): it says nothing about the server, and is no verdict.
    """

    ok: bool
    reason: str
    duration: float = 0.0
    agent_state: AgentState | None = None
    agent_weight_percent: int | None = None
    local_error: bool = False
