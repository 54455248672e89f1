"""Smooth weighted round-robin, the algorithm nginx uses for `upstream` blocks.

Every pick adds each eligible server's weight to its running `current`
weight, chooses the server with the largest `current` and subtracts the
total eligible weight from it. Over a cycle of `sum(weights)` picks each
server is chosen exactly `weight` times, and heavy servers are interleaved
with light ones (5,1,1 gives a a b a c a a) instead of served in bursts.

A server that is unusable or avoided for one pick simply sits that pick out,
as nginx does for servers that are down or already tried: its `current` is
left untouched and its weight is not part of the total, so the others keep
their relative shares and the skipped server rejoins where it left off.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.model import ServerView


class SmoothRoundRobin(Algorithm):
    """nginx's smooth weighted round-robin over one tier of servers."""

    __slots__ = ("_current", "_entries", "_servers", "_total", "_weights")

    def __init__(self, servers: Sequence[ServerView]) -> None:
        # Weights divided by their greatest common divisor pick the very same sequence
        # with smaller running weights. It matters: weights come scaled (WEIGHT_SCALE),
        # and an int above 256 stored into a list is a new object on every pick.
        weights = [server.weight for server in servers]
        divisor = math.gcd(*weights) or 1
        weights = [weight // divisor for weight in weights]
        # (position, server, key, weight) precomputed once: `ServerView.key`
        # builds a string on every access, too costly for the per-pick loop.
        self._entries = tuple(
            (position, server, server.key, weights[position])
            for position, server in enumerate(servers)
        )
        self._current = [0] * len(self._entries)
        # The same, as plain lists, for picks where every server takes part (most):
        # compiled, indexing lists of ints is native, unpacking tuples is not.
        self._servers = list(servers)
        self._weights = weights
        self._total = sum(weights)

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        if avoid or usable is not None or not self._weights:
            return self._pick_among(usable, avoid)
        # Every server takes part: the same steps as `_pick_among`, without the checks.
        current = self._current
        weights = self._weights
        best = 0
        best_current = current[0] + weights[0]
        current[0] = best_current
        for position in range(1, len(weights)):
            raised = current[position] + weights[position]
            current[position] = raised
            if raised > best_current:  # strict: the earliest server wins ties, as in nginx
                best, best_current = position, raised
        current[best] = best_current - self._total
        return self._servers[best]

    def _pick_among(self, usable: Usable | None, avoid: frozenset[str]) -> ServerView | None:
        """A pick where some servers may sit out (unusable or avoided)."""
        current = self._current
        best: ServerView | None = None
        best_position = -1
        best_current = 0
        total = 0
        for position, server, key, weight in self._entries:
            if (avoid and key in avoid) or (usable is not None and not usable(server)):
                continue
            raised = current[position] + weight
            current[position] = raised
            total += weight
            # Strict `>` keeps the earliest server on ties, as nginx does.
            if best is None or raised > best_current:
                best, best_position, best_current = server, position, raised
        if best is not None:
            current[best_position] = best_current - total
        return best


def round_robin(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> SmoothRoundRobin:
    """`AlgorithmFactory` for `round_robin` (loads and rng are not needed)."""
    return SmoothRoundRobin(servers)
