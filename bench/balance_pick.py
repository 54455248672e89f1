"""Micro-benchmark: cost of one `BackendBalancer.pick` per algorithm and pool size.

Prints a table of nanoseconds per pick with every server UP, and with half of
them DOWN (the degraded path where algorithms must skip servers), plus the
time to build a balancer from a snapshot (the hash ring is built cold: server
names are fresh for every measurement so no cache helps).

    .venv/bin/python bench/balance_pick.py [--picks 50000]

It is a script, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from bascule.balance.base import PickContext
from bascule.balance.registry import algorithm_names, get_factory
from bascule.balance.tiers import BackendBalancer
from bascule.model import WEIGHT_SCALE, BackendSnapshot, ServerState, ServerView

POOL_SIZES = (10, 100)
DISTINCT_REQUESTS = 1024


def distinct_algorithms() -> list[str]:
    """One name per factory (`ip_hash` is `source`)."""
    seen: dict[object, str] = {}
    for name in algorithm_names():
        seen.setdefault(get_factory(name), name)
    return list(seen.values())


def make_snapshot(size: int, tag: str, half_down: bool, rng: random.Random) -> BackendSnapshot:
    servers = tuple(
        ServerView(
            backend="bench",
            name=f"{tag}-s{i}",
            host="198.18.0.1",
            port=10_000 + i,
            weight=rng.randint(1, 10) * WEIGHT_SCALE,  # configured 1-10, as views carry it
            state=ServerState.DOWN if half_down and i % 2 else ServerState.UP,
            index=i,
        )
        for i in range(size)
    )
    return BackendSnapshot("bench", servers)


def make_requests(count: int) -> list[PickContext]:
    return [
        PickContext(client_ip=f"10.0.{i >> 8}.{i & 255}", hash_key=f"/item/{i}".encode())
        for i in range(count)
    ]


def time_build(snapshot: BackendSnapshot, algorithm: str, loads: dict[str, int]) -> float:
    """Seconds to build one balancer."""
    start = time.perf_counter()
    BackendBalancer(snapshot, algorithm, loads, random.Random(1))
    return time.perf_counter() - start


def time_picks(balancer: BackendBalancer, requests: Sequence[PickContext], picks: int) -> float:
    """Nanoseconds per pick, best of three runs."""
    best = float("inf")
    rounds = picks // len(requests)
    pick = balancer.pick
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            for ctx in requests:
                pick(ctx)
        best = min(best, time.perf_counter() - start)
    return best / (rounds * len(requests)) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--picks", type=int, default=50_000, help="picks per measurement")
    args = parser.parse_args()
    rng = random.Random(42)
    requests = make_requests(DISTINCT_REQUESTS)
    header = f"{'algorithm':<18} {'servers':>7} {'ns/pick':>9} {'half down':>10} {'build us':>9}"
    print(header)
    print("-" * len(header))
    for algorithm in distinct_algorithms():
        for size in POOL_SIZES:
            row = [f"{algorithm:<18}", f"{size:>7}"]
            build_seconds = 0.0
            for half_down in (False, True):
                tag = f"{algorithm}-{size}-{half_down}"
                snapshot = make_snapshot(size, tag, half_down, rng)
                loads = {s.key: rng.randint(0, 20) for s in snapshot.servers}
                if not half_down:
                    build_seconds = time_build(snapshot, algorithm, loads)
                balancer = BackendBalancer(snapshot, algorithm, loads, random.Random(1))
                cost = time_picks(balancer, requests, args.picks)
                row.append(f"{cost:>9.0f}" if not half_down else f"{cost:>10.0f}")
            row.append(f"{build_seconds * 1e6:>9.0f}")
            print(" ".join(row))


if __name__ == "__main__":
    main()
