"""Power of two choices: the lighter of two weighted random candidates wins."""

from __future__ import annotations

import random
from collections import Counter

from bascule.balance.base import PickContext
from bascule.balance.random_p2c import power_of_two_choices
from bascule.balance.tiers import usable_under
from bascule.model import ServerState, ServerView

NO_CONTEXT = PickContext()


def pool(*weights: int) -> tuple[ServerView, ...]:
    return tuple(
        ServerView("web", "abcdefgh"[i], "198.18.0.1", 8000 + i, weight=w, index=i)
        for i, w in enumerate(weights)
    )


def names(
    servers: tuple[ServerView, ...], loads: dict[str, int], count: int, seed: int = 0
) -> list[str]:
    algorithm = power_of_two_choices(servers, loads, random.Random(seed))
    usable = usable_under(loads)
    picks = [algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(count)]
    return [p.name for p in picks if p]


def test_of_two_servers_the_less_loaded_always_wins() -> None:
    # With two servers both are always the candidates, so the load decides.
    assert set(names(pool(1, 1), {"web/a": 5, "web/b": 1}, 50)) == {"b"}


def test_load_is_compared_per_unit_of_weight() -> None:
    # a: 6 connections on weight 4 (1.5 each); b: 2 on weight 1 (2 each).
    assert set(names(pool(4, 1), {"web/a": 6, "web/b": 2}, 50)) == {"a"}


def test_the_busiest_server_of_many_is_never_picked() -> None:
    loads = {"web/a": 0, "web/b": 1, "web/c": 2, "web/d": 9}
    # d loses to whichever other server it is drawn with.
    assert "d" not in names(pool(1, 1, 1, 1), loads, 500)


def test_idle_pool_is_weighted_random() -> None:
    counts = Counter(names(pool(3, 1), {}, 4000))
    assert 0.70 < counts["a"] / 4000 < 0.80


def test_the_rng_decides_so_different_seeds_give_different_orders() -> None:
    servers = pool(1, 1, 1, 1)
    assert names(servers, {}, 40, seed=1) != names(servers, {}, 40, seed=2)
    assert names(servers, {}, 40, seed=1) == names(servers, {}, 40, seed=1)


def test_the_only_usable_server_is_found_among_many_down_ones() -> None:
    servers = tuple(
        ServerView(
            "web",
            f"s{i}",
            "198.18.0.1",
            8000 + i,
            index=i,
            state=ServerState.UP if i == 17 else ServerState.DOWN,
        )
        for i in range(20)
    )
    assert set(names(servers, {}, 30)) == {"s17"}


def test_avoided_server_is_not_a_candidate() -> None:
    algorithm = power_of_two_choices(pool(1, 1, 1), {}, random.Random(0))
    usable = usable_under({})
    picks = {algorithm.pick(NO_CONTEXT, usable, frozenset({"web/a", "web/c"})) for _ in range(30)}
    assert {p.name for p in picks if p} == {"b"}
