"""`first`: fill servers in order, HAProxy's `balance first`.

The first server (lowest `index`) that may take the request gets it. With
`max_connections` set, a server is usable only below its limit, so servers
fill one after another and the rest stay idle: this lets an operator power
down or scale in the tail of the pool when traffic is low. Weights play no
part, by design.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.model import ServerView


class FirstAvailable(Algorithm):
    """Picks the lowest-index usable, non-avoided server."""

    __slots__ = ("_entries",)

    def __init__(self, servers: Sequence[ServerView]) -> None:
        in_order = sorted(servers, key=lambda server: server.index)
        self._entries = tuple((server, server.key) for server in in_order)

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        for server, key in self._entries:
            if not (avoid and key in avoid) and (usable is None or usable(server)):
                return server
        return None


def first(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> FirstAvailable:
    """`AlgorithmFactory` for `first` (loads and rng are not needed)."""
    return FirstAvailable(servers)
