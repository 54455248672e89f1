"""Weighted least connections: relative load decides, ties take turns."""

from __future__ import annotations

import random
from collections import Counter

from bascule.balance.base import PickContext
from bascule.balance.least_connections import least_connections
from bascule.balance.tiers import usable_under
from bascule.model import ServerView

NO_CONTEXT = PickContext()


def pool(*weights: int) -> tuple[ServerView, ...]:
    return tuple(
        ServerView("web", "abcdefgh"[i], "198.18.0.1", 8000 + i, weight=w, index=i)
        for i, w in enumerate(weights)
    )


def pick_name(
    servers: tuple[ServerView, ...], loads: dict[str, int], avoid: frozenset[str] = frozenset()
) -> str | None:
    picked = least_connections(servers, loads, random.Random(0)).pick(
        NO_CONTEXT, usable_under(loads), avoid
    )
    return picked.name if picked else None


def test_idle_server_is_preferred() -> None:
    loads = {"web/a": 3, "web/b": 0, "web/c": 2}
    assert pick_name(pool(1, 1, 1), loads) == "b"


def test_least_loaded_server_wins_when_none_is_idle() -> None:
    loads = {"web/a": 5, "web/b": 2, "web/c": 4}
    assert pick_name(pool(1, 1, 1), loads) == "b"


def test_load_is_judged_relative_to_weight() -> None:
    # a would carry 3 connections on weight 4 (0.75 each); idle b would carry 1 on weight 1.
    loads = {"web/a": 2, "web/b": 0}
    assert pick_name(pool(4, 1), loads) == "a"


def test_idle_heavy_server_beats_idle_light_server() -> None:
    assert pick_name(pool(1, 3), {}) == "b"


def test_equal_idle_servers_take_turns() -> None:
    servers = pool(1, 1, 1)
    loads: dict[str, int] = {}
    algorithm = least_connections(servers, loads, random.Random(0))
    usable = usable_under(loads)
    # Short requests: each finishes before the next arrives, so loads stay 0.
    picks = [algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(6)]
    assert "".join(p.name for p in picks if p) == "abcabc"


def test_turns_are_taken_only_among_the_tied_servers() -> None:
    servers = pool(1, 1, 1)
    loads = {"web/b": 4}
    algorithm = least_connections(servers, loads, random.Random(0))
    usable = usable_under(loads)
    picks = [algorithm.pick(NO_CONTEXT, usable, frozenset()) for _ in range(6)]
    assert Counter(p.name for p in picks if p) == Counter({"a": 3, "c": 3})


def test_new_connections_fill_the_pool_in_proportion_to_weight() -> None:
    servers = pool(3, 1)
    loads: dict[str, int] = {}
    algorithm = least_connections(servers, loads, random.Random(0))
    usable = usable_under(loads)
    for _ in range(40):  # long-lived connections: nobody closes
        picked = algorithm.pick(NO_CONTEXT, usable, frozenset())
        assert picked is not None
        loads[picked.key] = loads.get(picked.key, 0) + 1
    assert loads == {"web/a": 30, "web/b": 10}


def test_avoided_server_is_passed_over_even_when_idle() -> None:
    loads = {"web/a": 0, "web/b": 7}
    assert pick_name(pool(1, 1), loads, frozenset({"web/a"})) == "b"
