"""The balancing algorithms by the name users write in the configuration."""

from __future__ import annotations

from bascule.balance.base import AlgorithmFactory
from bascule.balance.first import first
from bascule.balance.hashing import ip_hash, request_hash, source
from bascule.balance.least_connections import least_connections
from bascule.balance.random_p2c import power_of_two_choices
from bascule.balance.round_robin import round_robin

ALGORITHMS: dict[str, AlgorithmFactory] = {
    "round_robin": round_robin,
    "least_connections": least_connections,
    "source": source,
    "ip_hash": ip_hash,
    "hash": request_hash,
    "random": power_of_two_choices,
    "first": first,
}
"""Name -> factory, in the order docs list them. `ip_hash` is an alias of `source`."""


def algorithm_names() -> tuple[str, ...]:
    """Every valid algorithm name, in a stable order for messages and docs."""
    return tuple(ALGORITHMS)


def get_factory(name: str) -> AlgorithmFactory:
    """The factory for `name`; KeyError naming the valid choices when it is unknown."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        valid = ", ".join(algorithm_names())
        raise KeyError(f"unknown balancing algorithm {name!r}; choose one of: {valid}") from None
