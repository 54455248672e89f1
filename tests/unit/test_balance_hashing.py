"""Consistent hashing: stable placement, minimal remapping, and the key-less fallback."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balance.base import Algorithm, AlgorithmFactory, PickContext
from bascule.balance.hashing import MAX_SERVERS_PER_TIER, key_point, request_hash, source
from bascule.balance.tiers import usable_under
from bascule.model import WEIGHT_SCALE, ServerState, ServerView

NOTHING_AVOIDED: frozenset[str] = frozenset()
KEYS = tuple(f"/item/{i}".encode() for i in range(2000))


def pool(count: int, weight: int = 1) -> tuple[ServerView, ...]:
    """`count` servers of configured weight `weight` (internal units in the view)."""
    return tuple(
        ServerView("web", f"s{i}", f"198.18.0.{i + 1}", 8080, weight=weight * WEIGHT_SCALE, index=i)
        for i in range(count)
    )


def placement(
    algorithm: Algorithm,
    keys: Sequence[bytes] = KEYS,
    unusable: frozenset[str] = frozenset(),
) -> dict[bytes, str]:
    """Which server name each key goes to; servers named in `unusable` are down."""
    up = usable_under({})

    def usable(server: ServerView) -> bool:
        return server.name not in unusable and up(server)

    result: dict[bytes, str] = {}
    for key in keys:
        picked = algorithm.pick(PickContext(hash_key=key), usable, NOTHING_AVOIDED)
        assert picked is not None
        result[key] = picked.name
    return result


def by_hash(servers: Sequence[ServerView]) -> Algorithm:
    return request_hash(servers, {}, random.Random(0))


def test_key_points_are_pinned_so_every_node_and_version_agrees() -> None:
    # These values are BLAKE2b's; if they change, keys move between servers
    # on upgrade and two balancer nodes would disagree. Do not update lightly.
    assert key_point(b"/") == 1189376880
    assert key_point(b"user-42") == 250400445
    assert key_point(b"\x00\xff") == 3927146841


def test_known_keys_land_on_known_servers() -> None:
    assert placement(by_hash(pool(5)), [b"/", b"/cart", b"user-42"]) == {
        b"/": "s4",
        b"/cart": "s4",
        b"user-42": "s0",
    }


def test_two_independently_built_balancers_agree() -> None:
    assert placement(by_hash(pool(7))) == placement(by_hash(pool(7)))


def test_order_of_servers_in_the_configuration_does_not_matter() -> None:
    servers = pool(7)
    assert placement(by_hash(servers)) == placement(by_hash(servers[::-1]))


def test_keys_spread_over_every_server() -> None:
    assert set(placement(by_hash(pool(6))).values()) == {f"s{i}" for i in range(6)}


@settings(max_examples=15, deadline=None)
@given(count=st.integers(2, 10), removed=st.integers(0, 9))
def test_removing_one_of_n_servers_moves_only_its_keys(count: int, removed: int) -> None:
    servers = pool(count)
    gone = servers[removed % count]
    before = placement(by_hash(servers))
    after = placement(by_hash([s for s in servers if s is not gone]))
    moved = [key for key in KEYS if before[key] != after[key]]
    assert len(moved) / len(KEYS) <= 1 / count + 0.1
    assert all(before[key] == gone.name for key in moved)


@settings(max_examples=15, deadline=None)
@given(count=st.integers(2, 10), failed=st.integers(0, 9))
def test_keys_of_healthy_servers_stay_put_while_one_server_is_down(count: int, failed: int) -> None:
    algorithm = by_hash(pool(count))
    down = f"s{failed % count}"
    before = placement(algorithm)
    during = placement(algorithm, unusable=frozenset({down}))
    for key in KEYS:
        if before[key] != down:
            assert during[key] == before[key]
        else:
            assert during[key] != down
    assert placement(algorithm) == before, "keys must return when the server does"


def test_keys_of_a_failed_server_are_shared_by_the_others_not_dumped_on_one() -> None:
    algorithm = by_hash(pool(8))
    before = placement(algorithm)
    during = placement(algorithm, unusable=frozenset({"s0"}))
    heirs = Counter(during[key] for key in KEYS if before[key] == "s0")
    assert len(heirs) >= 4


def test_avoided_server_sends_the_key_to_the_same_place_as_a_down_one() -> None:
    servers = pool(5)
    algorithm = by_hash(servers)
    usable = usable_under({})
    home = placement(algorithm)
    down_placement = placement(algorithm, unusable=frozenset({"s2"}))
    for key in KEYS[:300]:
        if home[key] == "s2":
            retry = algorithm.pick(PickContext(hash_key=key), usable, frozenset({"web/s2"}))
            assert retry is not None and retry.name == down_placement[key]


def test_draining_server_keeps_its_place_on_the_ring_for_when_it_returns() -> None:
    servers = pool(4)
    draining = tuple(replace(s, state=ServerState.DRAIN) if s.name == "s1" else s for s in servers)
    home = placement(by_hash(servers))
    during = placement(by_hash(draining))
    assert all(during[key] == home[key] for key in KEYS if home[key] != "s1")
    assert "s1" not in during.values()


def test_heavier_server_owns_proportionally_more_keys() -> None:
    servers = (
        *pool(2),
        ServerView("web", "big", "198.18.0.9", 8080, weight=4 * WEIGHT_SCALE, index=2),
    )
    counts = Counter(placement(by_hash(servers)).values())
    # Weight 4 of 6: two thirds of the keys, give or take ring placement.
    assert 0.55 < counts["big"] / len(KEYS) < 0.78


def test_source_sends_a_client_to_the_same_server_every_time() -> None:
    algorithm = source(pool(5), {}, random.Random(0))
    usable = usable_under({})
    for address in ("192.0.2.1", "2001:db8::1", "10.1.2.3"):
        picks = {
            algorithm.pick(PickContext(client_ip=address), usable, NOTHING_AVOIDED)
            for _ in range(20)
        }
        assert len(picks) == 1


def test_source_ignores_the_hash_key_and_hash_ignores_the_client() -> None:
    servers = pool(5)
    usable = usable_under({})
    by_client = source(servers, {}, random.Random(0))
    keyed = by_hash(servers)
    for i in range(50):
        ctx = PickContext(client_ip="192.0.2.7", hash_key=f"/p/{i}".encode())
        same_client = PickContext(client_ip="192.0.2.7")
        assert by_client.pick(ctx, usable, NOTHING_AVOIDED) == by_client.pick(
            same_client, usable, NOTHING_AVOIDED
        )
    spread = {
        keyed.pick(
            PickContext(client_ip="192.0.2.7", hash_key=f"/p/{i}".encode()), usable, NOTHING_AVOIDED
        )
        for i in range(50)
    }
    assert len(spread) > 1


@pytest.mark.parametrize(
    ("factory", "keyless"),
    [
        (source, PickContext()),
        (source, PickContext(client_ip="")),
        (request_hash, PickContext()),
        (request_hash, PickContext(hash_key=b"")),
    ],
)
def test_requests_without_a_key_are_spread_by_weighted_round_robin(
    factory: AlgorithmFactory, keyless: PickContext
) -> None:
    servers = (
        *pool(2),
        ServerView("web", "big", "198.18.0.9", 8080, weight=2 * WEIGHT_SCALE, index=2),
    )
    algorithm = factory(servers, {}, random.Random(0))
    usable = usable_under({})
    picks = [algorithm.pick(keyless, usable, NOTHING_AVOIDED) for _ in range(8)]
    assert Counter(p.name for p in picks if p) == Counter({"big": 4, "s0": 2, "s1": 2})


def test_a_pool_beyond_the_point_budget_still_spreads_keys_over_every_server() -> None:
    servers = pool(400, weight=10)  # 640,000 points at full density: scaled down
    owners = Counter(
        placement(by_hash(servers), [f"/k/{i}".encode() for i in range(8000)]).values()
    )
    assert len(owners) == 400
    assert max(owners.values()) < 4 * 20  # 20 keys each on average


def test_a_tier_too_large_for_the_ring_is_refused_with_advice() -> None:
    servers = [
        ServerView("web", f"s{i}", "198.18.0.1", 1024 + i % 60000, index=i)
        for i in range(MAX_SERVERS_PER_TIER + 1)
    ]
    with pytest.raises(ValueError, match=r"at most 65536 servers per tier.*split the backend"):
        by_hash(servers)
