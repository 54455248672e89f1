"""Agent percentages and slow start change traffic shares at any configured weight.

Weights are scaled internally (`WEIGHT_SCALE` units per configured unit, as HAProxy's
BE_WEIGHT_SCALE), so "50%" on a server of weight 1 halves its share instead of
rounding back to 1. Pure: a config's servers, their state machines, one snapshot,
the balancer.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bascule.balance.base import PickContext
from bascule.balance.tiers import BackendBalancer
from bascule.config import load_config_text
from bascule.control.plane import static_views
from bascule.health.results import CheckResult
from bascule.health.server_state import RiseFall, ServerStateMachine
from bascule.model import BackendSnapshot

CONFIG = """\
frontends: [{name: web, bind: "127.0.0.1:8080", default_backend: app}]
backends:
  - name: app
    algorithm: %s
    %s
    servers:
      - {name: half, address: 10.0.0.1, port: 80}
      - {name: full, address: 10.0.0.2, port: 80}
"""
HALF = CheckResult(ok=True, reason="agent check: 50%", agent_weight_percent=50)


def snapshot_with_agent_half(algorithm: str) -> BackendSnapshot:
    """Both servers have weight 1 (the default); the agent of `half` answered 50%."""
    hash_key = "hash_key: {source: uri}" if algorithm == "hash" else ""
    backend = load_config_text(CONFIG % (algorithm, hash_key)).backends[0]
    machines = [
        ServerStateMachine(view, initial_state="up", check=RiseFall(1, 1))
        for view in static_views(backend, {})
    ]
    machines[0].check_result(HALF, now=0.0)
    return BackendSnapshot("app", tuple(machine.view(0.0) for machine in machines))


def shares(algorithm: str, picks: int) -> Counter[str]:
    balancer = BackendBalancer(snapshot_with_agent_half(algorithm), algorithm, {}, random.Random(1))
    counts: Counter[str] = Counter()
    for i in range(picks):
        picked = balancer.pick(
            PickContext(
                client_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", hash_key=f"/item/{i}".encode()
            )
        )
        assert picked is not None
        counts[picked.name] += 1
    return counts


def test_round_robin_gives_half_of_weight_one_exactly_half_the_share() -> None:
    assert shares("round_robin", 3000) == {"half": 1000, "full": 2000}


# Tolerances on the share, as in test_balance_conformance.py: ring placement alone
# spreads a share by several percent.
@pytest.mark.parametrize(
    ("algorithm", "tolerance"), [("random", 0.1), ("source", 0.3), ("hash", 0.3)]
)
def test_other_weighted_algorithms_give_it_about_a_third(algorithm: str, tolerance: float) -> None:
    counts = shares(algorithm, 20_000)
    share = counts["half"] / counts.total()
    assert abs(share - 1 / 3) <= tolerance / 3, counts
