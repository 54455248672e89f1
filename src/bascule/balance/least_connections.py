"""Weighted least connections: send the request where it adds the least relative load.

The score of a server is `(load + 1) / weight`: the load it would carry with
this request, relative to its capacity. nginx's `least_conn` compares
`load / weight`; counting the new request (the `+ 1`) is what makes an idle
heavy server beat an idle light one instead of tying with it.

Ties are common (every idle pool is one big tie), so they are broken by
rotation: the scan starts just after the previous winner and the first
server with the best score wins. Equal servers therefore take turns instead
of the first one absorbing every burst of short requests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from itertools import islice

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.model import ServerView


class LeastConnections(Algorithm):
    """Weighted least connections with round-robin among tied servers."""

    __slots__ = ("_entries", "_loads", "_next_start", "_size")

    def __init__(self, servers: Sequence[ServerView], loads: Mapping[str, int]) -> None:
        entries = tuple((server, server.key, server.weight) for server in servers)
        # Twice over, so a scan starting anywhere is one contiguous slice.
        self._entries = entries + entries
        self._size = len(entries)
        self._loads = loads
        self._next_start = 0

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        entries = self._entries
        loads = self._loads
        start = self._next_start
        best: ServerView | None = None
        best_position = 0
        # The best score so far as the fraction best_need / best_weight;
        # comparing by cross-multiplication keeps it exact (no floats).
        best_need = 0
        best_weight = 1
        for position, (server, key, weight) in enumerate(
            islice(entries, start, start + self._size), start
        ):
            if weight <= 0 or (avoid and key in avoid):
                continue
            need = loads.get(key, 0) + 1
            # Usability is asked last, and only of a server that would win:
            # the predicate is the costliest step and most servers lose anyway.
            if (best is None or need * best_weight < best_need * weight) and (
                usable is None or usable(server)
            ):
                best, best_position, best_need, best_weight = server, position, need, weight
        if best is not None:
            self._next_start = (best_position + 1) % self._size
        return best


def least_connections(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> LeastConnections:
    """`AlgorithmFactory` for `least_connections` (the rng is not needed)."""
    return LeastConnections(servers, loads)
