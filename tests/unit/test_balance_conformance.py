"""The contract every balancing algorithm keeps, checked on generated pools.

Pools have 0-12 servers with random weights, states (UP/DOWN/DRAIN/MAINT),
backup flags and `max_connections` limits with live loads at or below the
limit. Usability is the tier layer's rule (`usable_under`), so these tests
exercise the algorithms exactly as `BackendBalancer` drives them.

Weight proportions are checked per family, because each family promises a
different kind of fairness:
  * round_robin: exact shares over one full cycle of sum(weights) picks;
  * least_connections: shares within 20% while connections open and close;
  * random: shares within 15% (or 4.5 binomial standard deviations for very
    small shares) over 20,000 seeded picks of an idle pool;
  * source / ip_hash / hash: shares of 20,000 distinct keys within 30%
    (ring placement alone spreads a weight-1 server's share by ~8%);
  * first: no proportion check. It fills servers in index order and ignores
    weights by design (HAProxy's `balance first`), so its promise, "the
    lowest-index usable server", is checked in test_balance_first.py.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bascule.balance.base import Algorithm, PickContext
from bascule.balance.registry import algorithm_names, get_factory
from bascule.balance.tiers import usable_under
from bascule.model import ServerState, ServerView


def one_name_per_factory() -> tuple[str, ...]:
    """The first registered name of each distinct factory.

    `ip_hash` is the very same factory as `source` (test_balance_registry.py
    checks that), so running the suite on it twice would buy nothing.
    """
    names: dict[object, str] = {}
    for name in algorithm_names():
        names.setdefault(get_factory(name), name)
    return tuple(names.values())


ALL_ALGORITHMS = one_name_per_factory()
HASHING = ("source", "hash")
NO_PROPORTION_CHECK = ("first",)

# Statistical checks are derandomized: the same pools every run, so a result
# is reproducible and a pass does not depend on the day's random draw.
statistical = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
contract = settings(max_examples=25, deadline=None)


@dataclass(frozen=True)
class Pool:
    servers: tuple[ServerView, ...]
    loads: dict[str, int]


@st.composite
def pools(
    draw: st.DrawFn,
    min_size: int = 0,
    max_size: int = 12,
    min_weight: int = 0,
    states: Sequence[ServerState] = tuple(ServerState),
    with_limits: bool = True,
) -> Pool:
    """A tier of servers plus live loads; a limited server's load is at or below its limit."""
    count = draw(st.integers(min_size, max_size))
    servers: list[ServerView] = []
    loads: dict[str, int] = {}
    for index in range(count):
        limit = draw(st.sampled_from((0, 0, 1, 3))) if with_limits else 0
        server = ServerView(
            backend="web",
            name=f"s{index}",
            host=f"198.18.0.{index + 1}",
            port=8080,
            weight=draw(st.integers(min_weight, 10)),
            backup=draw(st.booleans()),
            max_connections=limit,
            state=draw(st.sampled_from(states)),
            index=index,
        )
        servers.append(server)
        if limit:
            loads[server.key] = draw(st.integers(0, limit))
    return Pool(tuple(servers), loads)


contexts = st.builds(
    PickContext,
    client_ip=st.none() | st.ip_addresses().map(str),
    hash_key=st.none() | st.binary(max_size=12),
)


def build(name: str, servers: Sequence[ServerView], loads: Mapping[str, int]) -> Algorithm:
    return get_factory(name)(servers, loads, random.Random(1234))


def eligible(
    servers: Sequence[ServerView], loads: Mapping[str, int], avoid: frozenset[str]
) -> list[ServerView]:
    usable = usable_under(loads)
    return [s for s in servers if s.key not in avoid and usable(s)]


def varied_context(i: int) -> PickContext:
    """A context with a distinct client address and hash key for request `i`."""
    return PickContext(
        client_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        hash_key=f"/item/{i}".encode(),
    )


# --- the contract -----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(pool=pools(), avoided=st.sets(st.integers(0, 11)), requests=st.lists(contexts, max_size=25))
def test_picks_only_usable_servers_that_are_not_avoided(
    name: str, pool: Pool, avoided: set[int], requests: list[PickContext]
) -> None:
    loads = dict(pool.loads)
    avoid = frozenset(s.key for s in pool.servers if s.index in avoided)
    algorithm = build(name, pool.servers, loads)
    usable = usable_under(loads)
    for ctx in requests:
        picked = algorithm.pick(ctx, usable, avoid)
        candidates = eligible(pool.servers, loads, avoid)
        if candidates:
            assert picked in candidates
            # The connection stays open, so limited servers fill up as we go.
            loads[picked.key] = loads.get(picked.key, 0) + 1
        else:
            assert picked is None


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(pool=pools(min_size=1), requests=st.lists(contexts, min_size=1, max_size=10))
def test_avoiding_every_usable_server_leaves_nothing_to_pick(
    name: str, pool: Pool, requests: list[PickContext]
) -> None:
    avoid = frozenset(s.key for s in eligible(pool.servers, pool.loads, frozenset()))
    algorithm = build(name, pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    assert all(algorithm.pick(ctx, usable, avoid) is None for ctx in requests)


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
def test_empty_pool_picks_nothing(name: str) -> None:
    algorithm = build(name, (), {})
    for i in range(5):
        assert algorithm.pick(varied_context(i), usable_under({}), frozenset()) is None
    assert algorithm.pick(PickContext(), usable_under({}), frozenset()) is None


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(pool=pools(min_size=1, states=(ServerState.DOWN, ServerState.DRAIN, ServerState.MAINT)))
def test_pool_without_up_servers_picks_nothing(name: str, pool: Pool) -> None:
    algorithm = build(name, pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    for i in range(5):
        assert algorithm.pick(varied_context(i), usable, frozenset()) is None


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(pool=pools(min_size=1, max_size=6))
def test_pool_of_full_servers_picks_nothing(name: str, pool: Pool) -> None:
    full = tuple(replace(s, max_connections=2) for s in pool.servers)
    loads = {s.key: 2 for s in full}
    algorithm = build(name, full, loads)
    for i in range(5):
        assert algorithm.pick(varied_context(i), usable_under(loads), frozenset()) is None


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(pool=pools(), requests=st.lists(contexts, max_size=20))
def test_same_inputs_and_seed_give_the_same_picks(
    name: str, pool: Pool, requests: list[PickContext]
) -> None:
    one = build(name, pool.servers, pool.loads)
    two = build(name, pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    first_run = [one.pick(ctx, usable, frozenset()) for ctx in requests]
    second_run = [two.pick(ctx, usable, frozenset()) for ctx in requests]
    assert first_run == second_run


@pytest.mark.parametrize("name", ALL_ALGORITHMS)
@contract
@given(
    pool=pools(min_weight=1, states=(ServerState.UP,), with_limits=False),
    avoided=st.sets(st.integers(0, 11)),
    requests=st.lists(contexts, max_size=20),
)
def test_no_usability_predicate_means_every_server_is_usable(
    name: str, pool: Pool, avoided: set[int], requests: list[PickContext]
) -> None:
    # The tier layer passes None when the snapshot alone shows every server usable.
    avoid = frozenset(s.key for s in pool.servers if s.index in avoided)
    asked = build(name, pool.servers, pool.loads)
    told = build(name, pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    by_predicate = [asked.pick(ctx, usable, avoid) for ctx in requests]
    assert [told.pick(ctx, None, avoid) for ctx in requests] == by_predicate


# --- weights ------------------------------------------------------------------


def expected_shares(servers: Sequence[ServerView], loads: Mapping[str, int]) -> dict[str, float]:
    usable = eligible(servers, loads, frozenset())
    total = sum(s.weight for s in usable)
    return {s.key: s.weight / total for s in usable}


def assert_shares_close(
    counts: Mapping[str, int],
    shares: Mapping[str, float],
    relative: float,
    sigmas: float = 0.0,
) -> None:
    """Every usable server got its share within `relative` (or `sigmas` binomial std devs)."""
    picks = sum(counts.values())
    assert set(counts) <= set(shares), "a server outside the usable set was picked"
    for key, share in shares.items():
        expected = picks * share
        slack = max(relative * expected, sigmas * math.sqrt(expected * (1 - share)))
        assert abs(counts.get(key, 0) - expected) <= slack, (
            f"{key}: {counts.get(key, 0)} picks, expected {expected:.0f} +- {slack:.0f}"
        )


weighted_pools = pools(min_size=1, min_weight=1, with_limits=False)


def test_every_algorithm_except_first_has_a_weight_check() -> None:
    checked = {"round_robin", "least_connections", "random", *HASHING}
    covered = {get_factory(name) for name in checked | set(NO_PROPORTION_CHECK)}
    assert covered == {get_factory(name) for name in algorithm_names()}


@statistical
@given(pool=pools(min_size=1, min_weight=1), avoided=st.sets(st.integers(0, 11)))
def test_round_robin_gives_exact_shares_over_one_cycle(pool: Pool, avoided: set[int]) -> None:
    avoid = frozenset(s.key for s in pool.servers if s.index in avoided)
    candidates = eligible(pool.servers, pool.loads, avoid)
    algorithm = build("round_robin", pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    cycle = sum(s.weight for s in candidates)
    picks = Counter(algorithm.pick(PickContext(), usable, avoid) for _ in range(cycle))
    assert picks == Counter({s: s.weight for s in candidates})


def simulate_churn(
    algorithm: Algorithm,
    loads: dict[str, int],
    concurrency: int,
    picks: int,
    rng: random.Random,
) -> Counter[str]:
    """Keep `concurrency` connections open, closing a random one before each new pick.

    Returns how many of the `picks` measured after warm-up went to each server.
    """
    usable = usable_under(loads)
    open_connections: list[str] = []
    counts: Counter[str] = Counter()
    for step in range(concurrency + picks):
        if len(open_connections) >= concurrency:
            closing = rng.randrange(len(open_connections))
            open_connections[closing], open_connections[-1] = (
                open_connections[-1],
                open_connections[closing],
            )
            loads[open_connections.pop()] -= 1
        picked = algorithm.pick(PickContext(), usable, frozenset())
        assert picked is not None
        loads[picked.key] = loads.get(picked.key, 0) + 1
        open_connections.append(picked.key)
        if step >= concurrency:
            counts[picked.key] += 1
    return counts


@statistical
@given(pool=weighted_pools.filter(lambda p: any(s.state is ServerState.UP for s in p.servers)))
def test_least_connections_shares_follow_weights_as_connections_come_and_go(pool: Pool) -> None:
    shares = expected_shares(pool.servers, pool.loads)
    loads: dict[str, int] = {}
    algorithm = build("least_connections", pool.servers, loads)
    total_weight = sum(s.weight for s in pool.servers if s.key in shares)
    # Ten connections per unit of weight keeps the rounding of small loads
    # (a weight-1 server holds ~9, not 10) well inside the tolerance.
    counts = simulate_churn(algorithm, loads, 10 * total_weight, 10_000, random.Random(99))
    assert_shares_close(counts, shares, relative=0.20)


@statistical
@given(pool=weighted_pools.filter(lambda p: any(s.state is ServerState.UP for s in p.servers)))
def test_random_shares_follow_weights_on_an_idle_pool(pool: Pool) -> None:
    shares = expected_shares(pool.servers, pool.loads)
    algorithm = build("random", pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    counts = Counter(
        picked.key
        for picked in (algorithm.pick(PickContext(), usable, frozenset()) for _ in range(20_000))
        if picked is not None
    )
    assert_shares_close(counts, shares, relative=0.15, sigmas=4.5)


KEY_COUNT = 20_000
KEYED_REQUESTS = tuple(varied_context(i) for i in range(KEY_COUNT))


@pytest.mark.parametrize("name", HASHING)
@statistical
@given(pool=weighted_pools.filter(lambda p: any(s.state is ServerState.UP for s in p.servers)))
def test_hashing_spreads_distinct_keys_by_weight(name: str, pool: Pool) -> None:
    shares = expected_shares(pool.servers, pool.loads)
    algorithm = build(name, pool.servers, pool.loads)
    usable = usable_under(pool.loads)
    counts = Counter(
        picked.key
        for picked in (algorithm.pick(ctx, usable, frozenset()) for ctx in KEYED_REQUESTS)
        if picked is not None
    )
    assert_shares_close(counts, shares, relative=0.30)
