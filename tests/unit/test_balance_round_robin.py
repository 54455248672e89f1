"""Smooth weighted round-robin: nginx's interleaving, and how skipped servers rejoin."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from bascule.balance.base import PickContext
from bascule.balance.round_robin import round_robin
from bascule.balance.tiers import usable_under
from bascule.model import WEIGHT_SCALE, ServerView

NO_CONTEXT = PickContext()


def pool(*weights: int, max_connections: int = 0) -> tuple[ServerView, ...]:
    names = "abcdefgh"
    return tuple(
        ServerView(
            "web",
            names[i],
            "198.18.0.1",
            8000 + i,
            weight=w,
            index=i,
            max_connections=max_connections,
        )
        for i, w in enumerate(weights)
    )


def names_picked(servers: tuple[ServerView, ...], count: int, loads: dict[str, int]) -> str:
    algorithm = round_robin(servers, loads, random.Random(0))
    usable = usable_under(loads)
    picks = (algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(count))
    return "".join(p.name if p else "-" for p in picks)


def test_weights_5_1_1_interleave_exactly_as_nginx_does() -> None:
    assert names_picked(pool(5, 1, 1), 14, {}) == "aabacaa" * 2


@given(
    weights=st.lists(st.integers(0, 8), min_size=1, max_size=6),
    scale=st.sampled_from([WEIGHT_SCALE, 3, 160]),
    full=st.sets(st.integers(0, 5)),
)
def test_weights_scaled_alike_pick_the_same_sequence(
    weights: list[int], scale: int, full: set[int]
) -> None:
    """Configured weights arrive scaled (WEIGHT_SCALE); only their ratios may count,
    with servers sitting out (full) or not."""
    loads = {f"web/{'abcdefgh'[i]}": 1 for i in full if i < len(weights)}
    plain, scaled = (
        pool(*weights, max_connections=1),
        pool(*(w * scale for w in weights), max_connections=1),
    )
    for servers_loads in ({}, loads):
        assert names_picked(plain, 40, servers_loads) == names_picked(scaled, 40, servers_loads)


def test_equal_weights_take_strict_turns() -> None:
    assert names_picked(pool(1, 1, 1), 6, {}) == "abcabc"


def test_heavy_server_is_spread_through_the_cycle_not_served_in_a_burst() -> None:
    sequence = names_picked(pool(3, 1), 8, {})
    assert sequence == "aaba" * 2
    assert "bb" not in sequence


def test_full_server_sits_out_and_the_others_keep_their_ratio() -> None:
    servers = pool(2, 1, 1, max_connections=1)
    loads = {"web/b": 1}  # b is at its limit for the whole run
    assert Counter(names_picked(servers, 30, loads)) == Counter({"a": 20, "c": 10})


def test_server_that_comes_back_gets_its_share_without_a_burst() -> None:
    servers = pool(1, 1, 1, max_connections=1)
    loads = {"web/b": 1}
    algorithm = round_robin(servers, loads, random.Random(0))
    usable = usable_under(loads)
    for _ in range(20):
        algorithm.pick(NO_CONTEXT, usable, frozenset())
    loads["web/b"] = 0  # b finished its request and may take new ones again
    after = "".join(
        p.name for p in (algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(9)) if p
    )
    assert Counter(after) == Counter({"a": 3, "b": 3, "c": 3})
    assert "bb" not in after


def test_avoided_server_is_skipped_for_that_pick_only() -> None:
    servers = pool(1, 1)
    algorithm = round_robin(servers, {}, random.Random(0))
    usable = usable_under({})
    retried = algorithm.pick(NO_CONTEXT, usable, frozenset({"web/a"}))
    assert retried is not None and retried.name == "b"
    following = [algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(4)]
    assert Counter(p.name for p in following if p) == Counter({"a": 2, "b": 2})


@given(
    weights=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=6),
    avoided=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=5)), max_size=40),
)
def test_picks_without_checks_follow_the_same_sequence_as_checked_ones(
    weights: list[int], avoided: list[int | None]
) -> None:
    # With nothing avoided and no usability check the balancer takes a shorter path;
    # it must pick exactly what the checked path picks, also when the two alternate.
    servers = pool(*weights)
    fast = round_robin(servers, {}, random.Random(0))
    checked = round_robin(servers, {}, random.Random(0))
    everyone = usable_under({})
    for index in avoided:
        avoid = frozenset() if index is None else frozenset({f"web/{'abcdefgh'[index]}"})
        expected = checked.pick(NO_CONTEXT, everyone, avoid)
        got = fast.pick(NO_CONTEXT, None, avoid)
        assert got is expected
