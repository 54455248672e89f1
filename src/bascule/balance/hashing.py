"""Consistent hashing on a ketama-style ring: `source` (alias `ip_hash`) and `hash`.

Each server owns `VNODES_PER_WEIGHT` points per unit of configured weight on a
32-bit ring (the same density nginx uses for `hash ... consistent`); a weight
lowered by an agent or slow start owns a proportional share of them (weights are
in internal units, `WEIGHT_SCALE` per configured unit). A request key is hashed
to a point and served by the owner of the first point clockwise from it, so
removing one of N servers moves only the keys that server owned (about 1/N),
and a server that is only temporarily unusable (down, draining, full, or
avoided after a failed attempt) sends its keys to the next server on the
ring while every other key stays where it was.

Points come from BLAKE2b, never from Python's `hash()`, which is salted per
process: every worker process and every load-balancer node must agree on
where a key lives. A server's points derive from its *name* alone (plus its
weight), so renaming a backend or moving a server to a new address keeps
its keys, and two balancer nodes with the same configuration agree exactly.

Requests without a key (no client address, no hash key) are spread by smooth
weighted round-robin over the same servers: losing affinity is better than
piling every key-less request onto one server.

Lookup is a binary search (`bisect`) over one sorted tuple of numbers. The
ring is built once per snapshot and memoised on the servers' (name, weight)
pairs, so a snapshot that only changes server states reuses the ring.
"""

from __future__ import annotations

import hashlib
import random
import struct
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Final

from bascule.balance.base import Algorithm, PickContext, Usable
from bascule.balance.round_robin import SmoothRoundRobin
from bascule.model import WEIGHT_SCALE, ServerView

VNODES_PER_WEIGHT: Final = 160
"""Ring points per unit of configured weight (nginx's value): about 8% spread in share."""

RING_POINT_BUDGET: Final = 200_000
"""Above this many points the per-weight density is scaled down so a large
pool still builds in tens of milliseconds; every server keeps at least
one point per unit of weight. (In a pool that large, adding or removing a
server changes the density and so moves a few more keys than its own.)"""

# A ring entry packs `point * 2**16 + server_position` into one float (exact:
# it stays below 2**53), so the ring is one sorted list of floats. CPython
# sorts floats with a specialised comparison, twice as fast as 48-bit ints,
# and building the ring is dominated by that sort.
_POSITION_SCALE: Final = 65536.0
MAX_SERVERS_PER_TIER: Final = 65536
_POSITION_MASK: Final = 0xFFFF

# One 64-byte BLAKE2b digest yields 16 ring points (ketama takes 4 per MD5).
_POINTS_PER_DIGEST: Final = 16
_DIGEST_LAYOUT: Final = struct.Struct("<16I")
_KEY_LAYOUT: Final = struct.Struct("<I")
_blake2b: Final = hashlib.blake2b

KeyOf = Callable[[PickContext], bytes | None]


def key_point(key: bytes) -> int:
    """Where `key` lands on the ring: stable across processes, machines and versions."""
    # BLAKE2b rather than the 70 ns zlib.crc32: CRC is linear, so keys that differ
    # in a few bits (neighbouring client addresses) land in structured, clumped
    # places on the ring. BLAKE2b costs ~0.5 us and spreads any key set evenly.
    point: int = _KEY_LAYOUT.unpack(_blake2b(key, digest_size=4).digest())[0]
    return point


@lru_cache(maxsize=2048)
def _server_points(name: str, count: int) -> tuple[float, ...]:
    """The first `count` ring points of the server called `name`, already scaled.

    Point i never depends on `count`, so a server whose weight grows keeps its
    old points and only gains new ones (keys move to it, never around it).
    Memoised because hashing is the costly half of a ring build and a server's
    points do not change when its state does.
    """
    points: list[int] = []
    for block in range(-(-count // _POINTS_PER_DIGEST)):
        digest = _blake2b(f"{name}#{block}".encode(), digest_size=64).digest()
        points.extend(_DIGEST_LAYOUT.unpack(digest))
    return tuple(point * _POSITION_SCALE for point in points[:count])


def _points_per_weight(total_units: int) -> int:
    """Ring points per unit of configured weight, for a tier of `total_units` internal
    weight units (WEIGHT_SCALE per configured unit)."""
    if total_units * VNODES_PER_WEIGHT <= RING_POINT_BUDGET * WEIGHT_SCALE:
        return VNODES_PER_WEIGHT
    return max(1, RING_POINT_BUDGET * WEIGHT_SCALE // total_units)


def _point_count(units: int, per_weight: int) -> int:
    """The points of a server of `units` internal weight units: exactly `per_weight`
    per configured unit at full weight, in proportion below it, at least one."""
    return max(1, units * per_weight // WEIGHT_SCALE)


@lru_cache(maxsize=16)
def _build_ring(owners: tuple[tuple[str, int], ...]) -> tuple[float, ...]:
    """The sorted ring for servers given as (name, weight) in tier order.

    Memoised on (name, weight) pairs: most new snapshots only change server
    states, and those reuse the ring of the previous one.
    """
    per_weight = _points_per_weight(sum(max(weight, 0) for _, weight in owners))
    ring: list[float] = []
    for position, (name, weight) in enumerate(owners):
        if weight > 0:
            points = _server_points(name, _point_count(weight, per_weight))
            ring.extend([point + position for point in points])
    ring.sort()
    return tuple(ring)


def _position_of(entry: float) -> int:
    return int(entry) & _POSITION_MASK


class ConsistentHash(Algorithm):
    """Ketama-style consistent hashing over one tier; `key_of` extracts the request key."""

    __slots__ = ("_fallback", "_key_of", "_keys", "_ring", "_server_count", "_servers")

    def __init__(self, servers: Sequence[ServerView], key_of: KeyOf) -> None:
        if len(servers) > MAX_SERVERS_PER_TIER:
            raise ValueError(
                f"consistent hashing supports at most {MAX_SERVERS_PER_TIER} servers per tier, "
                f"got {len(servers)}; split the backend into several backends"
            )
        self._servers = tuple(servers)
        self._keys = tuple(server.key for server in servers)
        self._ring = _build_ring(tuple((server.name, server.weight) for server in servers))
        self._server_count = len({_position_of(entry) for entry in self._ring})
        self._key_of = key_of
        self._fallback = SmoothRoundRobin(servers)

    def pick(
        self, ctx: PickContext, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        key = self._key_of(ctx)
        ring = self._ring
        if key is None or not ring:
            return self._fallback.pick(ctx, usable, avoid)
        start = bisect_left(ring, key_point(key) * _POSITION_SCALE)
        if start == len(ring):
            start = 0
        position = int(ring[start]) & _POSITION_MASK  # inlined: the hot path
        server = self._servers[position]
        if not (avoid and self._keys[position] in avoid) and (usable is None or usable(server)):
            return server
        return self._walk_clockwise(start, usable, avoid)

    def _walk_clockwise(
        self, start: int, usable: Usable | None, avoid: frozenset[str]
    ) -> ServerView | None:
        """The owner of the first point after `start` that may take the request.

        Each server is judged once, and the walk stops as soon as every server
        on the ring has been rejected: an all-down tier costs about
        servers * log(servers) steps (to meet each server once), not the
        whole ring.
        """
        ring = self._ring
        rejected = {_position_of(ring[start])}
        for offset in range(1, len(ring)):
            if len(rejected) == self._server_count:
                break
            position = _position_of(ring[(start + offset) % len(ring)])
            if position in rejected:
                continue
            server = self._servers[position]
            if not (avoid and self._keys[position] in avoid) and (usable is None or usable(server)):
                return server
            rejected.add(position)
        return None


def _client_ip_key(ctx: PickContext) -> bytes | None:
    return ctx.client_ip.encode() if ctx.client_ip else None


def _hash_key(ctx: PickContext) -> bytes | None:
    # An empty value (say, an empty header) carries no affinity: treat it as missing.
    return ctx.hash_key or None


def source(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> ConsistentHash:
    """`AlgorithmFactory` for `source`: the same client address goes to the same server."""
    return ConsistentHash(servers, _client_ip_key)


ip_hash = source
"""nginx's name for `source`."""


def request_hash(
    servers: Sequence[ServerView], loads: Mapping[str, int], rng: random.Random
) -> ConsistentHash:
    """`AlgorithmFactory` for `hash`: the same `PickContext.hash_key` goes to the same server.

    (Not named `hash` so that the builtin is not shadowed; the registry name is `hash`.)
    """
    return ConsistentHash(servers, _hash_key)
