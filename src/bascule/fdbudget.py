"""How many client connections the file descriptor limit carries (pure: no system calls).

Every proxied connection holds two descriptors, the client's and the server's, like
in HAProxy (`compute_ideal_maxconn()` in src/limits.c: what is left of the limit
once listeners, checks and the process's own descriptors are set aside, halved).
When the frontends' `max_connections` add up to more than that, each is lowered in
proportion so that they fit, and the warning says by how much and how to raise the
limit: HAProxy's "FD limit too low for maxconn" warning, except that Bascule runs
with what fits instead of failing later with EMFILE on live traffic.
`App` reads the limit (`resource.getrlimit`) and applies the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FDS_PER_CONNECTION = 2  # the client's socket and the server's
# What the process holds whatever its config: stdin/stdout/stderr, the event loop's
# epoll and wake-up descriptors, signal pipes, the check connector's epoll, log files.
PROCESS_FDS = 20
# Opened on demand and briefly (notify and track scripts' pipes), and libuv's spare
# descriptor. Small, like HAProxy's: running short for a moment costs a 503 for the
# balancer's own reason, never a server (see errors.LocalResourceError).
MARGIN_FDS = 8
FDS_PER_COMMAND_CHECK = 4  # a program's three pipes, and one more while it starts
FDS_PER_VRRP_INSTANCE = 4  # raw sockets (advert, ARP/NA), netlink


@dataclass(frozen=True)
class FrontendLimit:
    name: str
    max_connections: int  # as configured; 0 = unlimited
    # Written in the file (the frontend or `defaults:`), not Bascule's default: only
    # lowering such a value is the operator's business (HAProxy, too, warns only about
    # a maxconn it was given, and sizes an unset one to the limit silently).
    explicit: bool = True


@dataclass(frozen=True)
class FdPlan:
    """What the limit allows and the `max_connections` each frontend runs with."""

    limit: int  # RLIMIT_NOFILE (soft, after raising it to the hard limit)
    reserved: int  # descriptors set aside for everything but proxied connections
    connections: int  # client connections the limit carries in all
    max_connections: dict[str, int]  # frontend name -> the value to run with
    lowered: tuple[FrontendLimit, ...]  # finite values lowered to fit
    wanted: int  # sum of the finite configured values (0 when all are unlimited)

    @property
    def needed_limit(self) -> int:
        """The limit that would carry every finite configured value."""
        return self.reserved + FDS_PER_CONNECTION * self.wanted

    @property
    def lowered_explicit(self) -> bool:
        """Was a value written in the configuration lowered (not just the default)?"""
        return any(f.explicit for f in self.lowered)

    def warning(self) -> str | None:
        """What was lowered and how to raise the limit, or None when nothing was."""
        if not self.lowered:
            return None
        lowered = ", ".join(
            f"frontend {f.name} {f.max_connections} -> {self.max_connections[f.name]}"
            for f in self.lowered
        )
        needed = self.needed_limit
        return (
            f"file descriptor limit {self.limit} carries {self.connections} client "
            f"connections ({FDS_PER_CONNECTION} descriptors each, {self.reserved} kept for "
            f"listeners, checks and the process), fewer than max_connections asks for: "
            f"running with {lowered}. To serve them all, raise the limit to {needed} or "
            f"more: LimitNOFILE={needed} in the systemd unit, or `ulimit -n {needed}` "
            "before `bascule run`"
        )


def reserved_fds(
    *, listeners: int, checked_servers: int, command_checks: int = 0, vrrp_instances: int = 0
) -> int:
    """Descriptors the process needs besides its proxied connections. A check in flight
    holds one socket (idle check sockets are reused, never more than checks); a
    command check runs a program."""
    return (
        PROCESS_FDS
        + MARGIN_FDS
        + listeners
        + checked_servers
        + FDS_PER_COMMAND_CHECK * command_checks
        + FDS_PER_VRRP_INSTANCE * vrrp_instances
    )


def plan(limit: int, reserved: int, frontends: Sequence[FrontendLimit]) -> FdPlan:
    """Fit the frontends' `max_connections` into `limit` descriptors.

    Finite values that fit together are kept, and unlimited frontends share what is
    left equally. When they do not fit, every frontend gets its share of the budget
    in proportion to its value (an unlimited one counted as the whole budget), at
    least 1.
    """
    connections = max(0, (limit - reserved) // FDS_PER_CONNECTION)
    finite = sum(f.max_connections for f in frontends)
    unlimited = sum(1 for f in frontends if not f.max_connections)
    granted: dict[str, int]
    if finite + unlimited <= connections:
        share = (connections - finite) // unlimited if unlimited else 0
        granted = {f.name: f.max_connections or share for f in frontends}
    else:
        asked = {f.name: f.max_connections or connections for f in frontends}
        total = sum(asked.values())
        granted = {name: max(1, value * connections // total) for name, value in asked.items()}
    lowered = tuple(
        f for f in frontends if f.max_connections and granted[f.name] < f.max_connections
    )
    return FdPlan(limit, reserved, connections, granted, lowered, finite)
