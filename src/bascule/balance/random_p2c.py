"""`random`: power of two choices, weighted.

Two distinct candidates are drawn at random, each with probability
proportional to its weight, and the one with the lower `load / weight` wins
(the first drawn on a tie, so an idle pool is plain weighted random). Two
samples are enough to avoid the worst servers almost always, without the
herding that a global "least loaded" choice causes when many balancers
decide at once; this is what HAProxy's `random(2)` and Envoy's
`LEAST_REQUEST` do.

Candidates are drawn from the whole tier by binary search over cumulative
weights and redrawn when unusable or avoided. Only after a few misses
(a mostly unavailable tier) does a pick build the list of eligible servers;
either way each eligible server is drawn with probability weight / eligible
weight, so the shortcut does not bias the choice.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Final

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.model import ServerView

_REDRAWS_BEFORE_SCAN: Final = 4


class PowerOfTwoChoices(Algorithm):
    """Weighted power-of-two-choices over one tier."""

    __slots__ = ("_cumulative", "_keys", "_loads", "_rng", "_servers", "_total", "_weights")

    def __init__(
        self, servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
    ) -> None:
        # Servers without weight can never be drawn, so leave them out entirely.
        weighted = tuple(server for server in servers if server.weight > 0)
        self._servers = weighted
        self._keys = tuple(server.key for server in weighted)
        self._weights = tuple(server.weight for server in weighted)
        self._cumulative = tuple(accumulate(self._weights))
        self._total = self._cumulative[-1] if weighted else 0
        self._loads = loads
        self._rng = rng

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        first = self._draw(usable, avoid, -1)
        if first < 0:
            return None
        second = self._draw(usable, avoid, first) if len(self._servers) > 1 else -1
        if second >= 0 and self._lighter(second, first):
            return self._servers[second]
        return self._servers[first]

    def _lighter(self, candidate: int, incumbent: int) -> bool:
        """True when `candidate` has strictly less load per unit of weight."""
        loads, keys, weights = self._loads, self._keys, self._weights
        # load_c / weight_c < load_i / weight_i, cross-multiplied to stay exact.
        return (
            loads.get(keys[candidate], 0) * weights[incumbent]
            < loads.get(keys[incumbent], 0) * weights[candidate]
        )

    def _draw(self, usable: Usable | None, avoid: frozenset[str], other: int) -> int:
        """Position of a weighted random eligible server other than `other`, or -1."""
        servers, keys = self._servers, self._keys
        if not servers:
            return -1
        uniform, cumulative, total = self._rng.random, self._cumulative, self._total
        last = len(cumulative) - 1
        for _ in range(_REDRAWS_BEFORE_SCAN):
            # `hi=last` guards against random() * total rounding up to total.
            position = bisect_right(cumulative, uniform() * total, 0, last)
            if (
                position != other
                and not (avoid and keys[position] in avoid)
                and (usable is None or usable(servers[position]))
            ):
                return position
        return self._draw_by_scan(usable, avoid, other)

    def _draw_by_scan(self, usable: Usable | None, avoid: frozenset[str], other: int) -> int:
        eligible = [
            position
            for position, (server, key) in enumerate(zip(self._servers, self._keys, strict=True))
            if position != other
            and not (avoid and key in avoid)
            and (usable is None or usable(server))
        ]
        if not eligible:
            return -1
        weights = [self._weights[position] for position in eligible]
        return self._rng.choices(eligible, weights)[0]


def power_of_two_choices(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> PowerOfTwoChoices:
    """`AlgorithmFactory` for `random` (named for what it does; the registry name is `random`)."""
    return PowerOfTwoChoices(servers, loads, rng)
