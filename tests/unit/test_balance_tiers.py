"""Primary and backup tiers, and which servers may take new requests (HAProxy rules)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balance.base import PickContext
from bascule.balance.registry import algorithm_names
from bascule.balance.tiers import BackendBalancer, usable_under
from bascule.model import BackendSnapshot, ServerState, ServerView

UP, DOWN, DRAIN, MAINT = ServerState.UP, ServerState.DOWN, ServerState.DRAIN, ServerState.MAINT
ALGORITHMS = algorithm_names()


def server(
    name: str,
    index: int,
    *,
    backup: bool = False,
    state: ServerState = UP,
    weight: int = 1,
    max_connections: int = 0,
) -> ServerView:
    return ServerView(
        "web",
        name,
        f"198.18.0.{index + 1}",
        8080,
        weight=weight,
        backup=backup,
        max_connections=max_connections,
        state=state,
        index=index,
    )


def balancer(
    *servers: ServerView, algorithm: str = "round_robin", loads: dict[str, int] | None = None
) -> BackendBalancer:
    snapshot = BackendSnapshot("web", servers)
    return BackendBalancer(snapshot, algorithm, {} if loads is None else loads, random.Random(0))


def picked_names(balance: BackendBalancer, count: int = 6) -> set[str | None]:
    picks = (balance.pick(PickContext(client_ip=f"192.0.2.{i}")) for i in range(count))
    return {p.name if p else None for p in picks}


# --- usability ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "load", "usable"),
    [
        (server("a", 0), 0, True),
        (server("a", 0), 1000, True),  # no limit
        (server("a", 0, state=DOWN), 0, False),
        (server("a", 0, state=DRAIN), 0, False),
        (server("a", 0, state=MAINT), 0, False),
        (server("a", 0, weight=0), 0, False),
        (server("a", 0, max_connections=3), 2, True),
        (server("a", 0, max_connections=3), 3, False),
        (server("a", 0, max_connections=3), 4, False),
    ],
)
def test_usable_means_up_weighted_and_below_the_limit(
    candidate: ServerView, load: int, usable: bool
) -> None:
    assert usable_under({"web/a": load})(candidate) is usable


def test_usability_follows_the_live_loads() -> None:
    loads = {"web/a": 1}
    usable = usable_under(loads)
    limited = server("a", 0, max_connections=1)
    assert not usable(limited)
    loads["web/a"] = 0
    assert usable(limited)


# --- tiers -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_backups_wait_while_a_primary_is_up(algorithm: str) -> None:
    balance = balancer(server("p", 0), server("b", 1, backup=True), algorithm=algorithm)
    assert picked_names(balance) == {"p"}
    assert not balance.using_backups


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("primary_state", [DOWN, DRAIN, MAINT])
def test_backups_take_over_when_no_primary_is_up(
    algorithm: str, primary_state: ServerState
) -> None:
    balance = balancer(
        server("p1", 0, state=primary_state),
        server("p2", 1, state=DOWN),
        server("b1", 2, backup=True),
        server("b2", 3, backup=True, state=DOWN),
        algorithm=algorithm,
    )
    assert picked_names(balance) == {"b1"}
    assert balance.using_backups


def test_a_primary_with_weight_zero_does_not_hold_back_the_backups() -> None:
    balance = balancer(server("p", 0, weight=0), server("b", 1, backup=True))
    assert picked_names(balance) == {"b"}
    assert balance.using_backups


def test_traffic_returns_to_primaries_with_the_next_snapshot() -> None:
    down = balancer(server("p", 0, state=DOWN), server("b", 1, backup=True))
    assert picked_names(down) == {"b"}
    recovered = balancer(server("p", 0), server("b", 1, backup=True))
    assert picked_names(recovered) == {"p"}
    assert not recovered.using_backups


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_full_primaries_answer_none_rather_than_overflow_to_backups(algorithm: str) -> None:
    loads = {"web/p1": 2, "web/p2": 2}
    balance = balancer(
        server("p1", 0, max_connections=2),
        server("p2", 1, max_connections=2),
        server("b", 2, backup=True),
        algorithm=algorithm,
        loads=loads,
    )
    assert picked_names(balance) == {None}
    assert not balance.using_backups
    loads["web/p2"] = 1  # one connection to p2 closed
    assert picked_names(balance) == {"p2"}


def test_every_server_down_and_no_backups_gives_none() -> None:
    balance = balancer(server("p", 0, state=DOWN))
    assert picked_names(balance) == {None}
    assert not balance.using_backups


def test_all_backups_down_too_gives_none() -> None:
    balance = balancer(server("p", 0, state=DOWN), server("b", 1, backup=True, state=MAINT))
    assert picked_names(balance) == {None}


def test_avoid_is_passed_through_to_the_algorithm() -> None:
    balance = balancer(server("p1", 0), server("p2", 1), server("b", 2, backup=True))
    picks = {balance.pick(PickContext(), frozenset({"web/p1"})) for _ in range(4)}
    assert {p.name for p in picks if p} == {"p2"}
    assert balance.pick(PickContext(), frozenset({"web/p1", "web/p2"})) is None


def test_unknown_algorithm_is_refused_when_the_balancer_is_built() -> None:
    with pytest.raises(KeyError, match="unknown balancing algorithm 'fastest'"):
        balancer(server("p", 0), algorithm="fastest")


@st.composite
def snapshots(draw: st.DrawFn) -> BackendSnapshot:
    count = draw(st.integers(0, 8))
    servers = tuple(
        server(
            f"s{i}",
            i,
            backup=draw(st.booleans()),
            state=draw(st.sampled_from(list(ServerState))),
            weight=draw(st.integers(0, 5)),
        )
        for i in range(count)
    )
    return BackendSnapshot("web", servers)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=30, deadline=None)
@given(snapshot=snapshots(), seed=st.integers(0, 2**32 - 1))
def test_picks_come_from_the_right_tier_and_never_from_unusable_servers(
    algorithm: str, snapshot: BackendSnapshot, seed: int
) -> None:
    balance = BackendBalancer(snapshot, algorithm, {}, random.Random(seed))
    primaries_live = any(s.takes_new_traffic for s in snapshot.primaries)
    tier = snapshot.primaries if primaries_live else snapshot.backups
    live = [s for s in tier if s.takes_new_traffic]
    assert balance.using_backups is (not primaries_live and bool(snapshot.backups))
    for i in range(10):
        picked = balance.pick(PickContext(client_ip=f"192.0.2.{i}", hash_key=bytes([i])))
        if live:
            assert picked in live
        else:
            assert picked is None


def test_snapshot_is_kept_for_the_caller() -> None:
    snapshot = BackendSnapshot("web", (server("p", 0),), version=7)
    assert BackendBalancer(snapshot, "first", {}, random.Random(0)).snapshot is snapshot
