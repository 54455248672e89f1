"""Runtime model shared by the control and data planes.

A `BackendSnapshot` is immutable: the control plane builds a new one on every
change and the data plane only ever reads the latest. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

WEIGHT_SCALE = 16
"""Internal weight units per unit of configured weight (HAProxy's BE_WEIGHT_SCALE).

Balancers work on `ServerView.weight`, the configured weight times this scale, so
that an agent's percentage or a slow-start step changes the share of a server of
weight 1 too (50% of 1 is 8 units, half the share of a weight-1 server). Every
balancer depends only on the ratios of weights (consistent hashing places its ring
points per configured unit), so scaling all weights alike changes no pick. What
users read (events, logs) is in configured units: `format_weight`."""


def format_weight(units: int) -> str:
    """Internal weight units as configured weight: 16 -> "1", 8 -> "0.5", 5 -> "0.31"."""
    if units % WEIGHT_SCALE == 0:
        return str(units // WEIGHT_SCALE)
    return f"{units / WEIGHT_SCALE:.2f}".rstrip("0")


class ServerState(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    DRAIN = "drain"
    MAINT = "maint"


@dataclass(frozen=True, slots=True)
class ServerView:
    """One server as the data plane sees it in a snapshot."""

    backend: str
    name: str
    host: str
    port: int
    weight: int = WEIGHT_SCALE  # effective, in internal units: see WEIGHT_SCALE
    backup: bool = False
    max_connections: int = 0  # 0 means unlimited
    state: ServerState = ServerState.UP
    index: int = 0  # position in the backend's server list (stable across snapshots)
    # `backend/server`, the name users see in logs and events. Computed once: the
    # data plane uses it as a dict key several times per request.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.backend}/{self.name}")

    @property
    def takes_new_traffic(self) -> bool:
        return self.state is ServerState.UP and self.weight > 0


@dataclass(frozen=True, slots=True)
class BackendSnapshot:
    """An immutable view of one backend's servers, published by the control plane."""

    name: str
    servers: tuple[ServerView, ...]
    version: int = 0

    @property
    def primaries(self) -> tuple[ServerView, ...]:
        return tuple(s for s in self.servers if not s.backup)

    @property
    def backups(self) -> tuple[ServerView, ...]:
        return tuple(s for s in self.servers if s.backup)


@dataclass(frozen=True, slots=True)
class Event:
    """A decision the daemon made, with the reason a human needs."""

    time: float  # wall-clock seconds (time.time()) when it happened
    kind: str  # e.g. "server.down", "server.up", "config.loaded"
    subject: str  # e.g. "web/s2"
    # full sentence, e.g. "server web/s2 DOWN: connect refused (3/3 consecutive failures over 2.0s)"
    message: str
    fields: dict[str, object] = field(default_factory=dict)
