"""Which servers may take a request, and the primary/backup tiers (HAProxy semantics).

A server is *usable* when it is UP, has weight > 0 and is below its
`max_connections` (0 means unlimited). DRAIN and MAINT servers finish the
requests they have but never get new ones.

Backup servers take traffic only while *no* primary server is UP with
weight > 0. Primaries that are UP but full (every one at `max_connections`)
do not send traffic to the backups: the pick returns None and the caller
answers 503, because spilling onto a small backup pool during a load peak
would take it down too. This is HAProxy's rule, and like HAProxy with
`option allbackups` the balancing algorithm spreads traffic over every
backup rather than using only the first.

Both conditions depend only on the snapshot, so the tier is chosen once when
a `BackendBalancer` is built. When primaries come back, the control plane
publishes a new snapshot and the new balancer sends traffic to them again.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.balance.registry import get_factory
from bascule.model import BackendSnapshot, ServerState, ServerView

_UP: Final = ServerState.UP


def usable_under(loads: Mapping[str, int]) -> Usable:
    """The usability predicate for live load `loads` (server key -> in-flight count)."""

    def usable(server: ServerView) -> bool:
        if server.state is not _UP or server.weight <= 0:
            return False
        limit = server.max_connections
        # Only look the load up when there is a limit: `server.key` builds a string.
        return limit == 0 or loads.get(server.key, 0) < limit

    return usable


class BackendBalancer:
    """Picks servers for one backend snapshot; build a new one for every snapshot.

    `loads` is the data plane's live mapping of server key to in-flight
    count; it is read on every pick, never written. `algorithm` is a name from
    `bascule.balance.registry` (KeyError listing the valid names otherwise).
    """

    __slots__ = ("_active", "_snapshot", "_usable", "_using_backups")

    def __init__(
        self,
        snapshot: BackendSnapshot,
        algorithm: str,
        loads: Mapping[str, int],
        rng: random.Random,
    ) -> None:
        factory = get_factory(algorithm)
        primaries = snapshot.primaries
        backups = snapshot.backups
        self._snapshot = snapshot
        self._using_backups = bool(backups) and not any(
            server.takes_new_traffic for server in primaries
        )
        # Only the tier this snapshot sends traffic to is ever consulted, so
        # only its algorithm is built (a hash ring costs real time to build).
        tier = backups if self._using_backups else primaries
        self._active: Algorithm | None = factory(tier, loads, rng) if tier else None
        # When the snapshot alone says every server of the tier is usable (all UP, with
        # weight, no max_connections), the algorithm need not ask server by server.
        always = all(s.takes_new_traffic and s.max_connections == 0 for s in tier)
        self._usable: Usable | None = None if always else usable_under(loads)

    @property
    def snapshot(self) -> BackendSnapshot:
        return self._snapshot

    @property
    def using_backups(self) -> bool:
        """True when no primary is UP with weight > 0 and backups exist.

        The tier is fixed per snapshot, so this describes the last decision
        and every other decision made by this balancer.
        """
        return self._using_backups

    def pick(self, ctx: PickContext, avoid: frozenset[str] = frozenset()) -> ServerView | None:
        """A usable server whose key is not in `avoid`, or None (the caller answers 503)."""
        active = self._active
        if active is None:
            return None
        return active.pick(ctx, self._usable, avoid)
