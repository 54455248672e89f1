"""`first`: servers fill in index order; weights do not matter."""

from __future__ import annotations

import random

from bascule.balance.base import PickContext
from bascule.balance.first import first
from bascule.balance.tiers import usable_under
from bascule.model import ServerState, ServerView

NO_CONTEXT = PickContext()


def server(
    name: str,
    index: int,
    weight: int = 1,
    max_connections: int = 0,
    state: ServerState = ServerState.UP,
) -> ServerView:
    return ServerView(
        "web",
        name,
        "198.18.0.1",
        8000 + index,
        weight=weight,
        index=index,
        max_connections=max_connections,
        state=state,
    )


def picked_name(
    servers: tuple[ServerView, ...], loads: dict[str, int], avoid: frozenset[str] = frozenset()
) -> str | None:
    picked = first(servers, loads, random.Random(0)).pick(NO_CONTEXT, usable_under(loads), avoid)
    return picked.name if picked else None


def test_lowest_index_wins_whatever_the_listing_order_or_weights() -> None:
    servers = (server("c", 2, weight=10), server("a", 0), server("b", 1, weight=5))
    assert picked_name(servers, {}) == "a"


def test_servers_fill_one_after_another() -> None:
    servers = (server("a", 0, max_connections=2), server("b", 1, max_connections=2))
    loads: dict[str, int] = {}
    algorithm = first(servers, loads, random.Random(0))
    usable = usable_under(loads)
    order = []
    for _ in range(4):
        picked = algorithm.pick(NO_CONTEXT, usable, frozenset())
        assert picked is not None
        loads[picked.key] = loads.get(picked.key, 0) + 1
        order.append(picked.name)
    assert order == ["a", "a", "b", "b"]
    assert algorithm.pick(NO_CONTEXT, usable, frozenset()) is None
    loads["web/a"] -= 1  # a connection to a closes: a has room again
    again = algorithm.pick(NO_CONTEXT, usable, frozenset())
    assert again is not None and again.name == "a"


def test_down_first_server_is_passed_over() -> None:
    servers = (server("a", 0, state=ServerState.DOWN), server("b", 1))
    assert picked_name(servers, {}) == "b"


def test_avoided_first_server_is_passed_over() -> None:
    servers = (server("a", 0), server("b", 1))
    assert picked_name(servers, {}, frozenset({"web/a"})) == "b"
