"""What every balancing algorithm implements, and what it is given.

An algorithm instance is built for one *tier* of one backend snapshot (the
primary servers, or the backup servers) and lives until the next snapshot.
It may keep internal state (smooth round-robin weights, a hash ring) but it
never does I/O, never reads a clock and draws randomness only from the
`random.Random` it is given.

Live load (in-flight connections or requests per server) changes between
snapshots, so it is not in the snapshot: the data plane owns a mutable
mapping `server.key -> count` and the algorithm only reads it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bascule.model import ServerView


@dataclass(frozen=True)
class PickContext:
    """What the data plane knows about the request being balanced.

    Any field may be missing (Envoy's rule: assume context is missing and use
    sensible defaults); an algorithm that needs a missing key falls back to
    round-robin-like behaviour rather than failing.
    """

    client_ip: str | None = None
    hash_key: bytes | None = None  # URI, header or cookie value for `hash`


Usable = Callable[[ServerView], bool]
"""Predicate from the tier layer: state UP, weight > 0, below max_connections."""


class Algorithm:
    """A balancing algorithm for one tier of servers: each one subclasses this.

    A base class rather than a Protocol so that, compiled (see setup.py), the data
    plane's call to `pick` is a direct call instead of a generic method lookup.
    """

    __slots__ = ()

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        """Return a server for which `usable(server)` is true and whose `key` is not
        in `avoid`, or None when there is none. `usable` None: every server is usable
        (the tier layer knows that from the snapshot, and skips a call per server)."""
        raise NotImplementedError


AlgorithmFactory = Callable[
    [Sequence[ServerView], Mapping[str, int], random.Random],
    Algorithm,
]
"""Builds an algorithm from (servers of one tier, live load by server key, rng)."""
