"""The balancing algorithms by the name users write in the configuration.

The names are `balance/names.py`'s (the configuration validates against that list);
this module maps each one to its code, and refuses at import a mapping that names
an algorithm the configuration would not accept or leaves one of its names out.
"""

from __future__ import annotations

from bascule.balance.base import AlgorithmFactory
from bascule.balance.first import first
from bascule.balance.hashing import ip_hash, request_hash, source
from bascule.balance.least_connections import least_connections
from bascule.balance.names import ALGORITHM_NAMES
from bascule.balance.random_p2c import power_of_two_choices
from bascule.balance.round_robin import round_robin

_FACTORIES: dict[str, AlgorithmFactory] = {
    "round_robin": round_robin,
    "least_connections": least_connections,
    "source": source,
    "ip_hash": ip_hash,
    "hash": request_hash,
    "random": power_of_two_choices,
    "first": first,
}

# The algorithms that read the pick context (client address, request hash key): the
# data plane builds one only for their backends.
_READ_CONTEXT: frozenset[AlgorithmFactory] = frozenset({source, ip_hash, request_hash})


def _by_configured_name(factories: dict[str, AlgorithmFactory]) -> dict[str, AlgorithmFactory]:
    """`factories` in the configuration's order, if it has exactly its names."""
    if set(factories) != set(ALGORITHM_NAMES):
        unnamed = sorted(set(factories) - set(ALGORITHM_NAMES))
        missing = sorted(set(ALGORITHM_NAMES) - set(factories))
        raise RuntimeError(
            "balance/registry.py and balance/names.py disagree: "
            f"registered but not configurable: {unnamed}; configurable but not registered: "
            f"{missing}"
        )
    return {name: factories[name] for name in ALGORITHM_NAMES}


ALGORITHMS: dict[str, AlgorithmFactory] = _by_configured_name(_FACTORIES)
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


def reads_context(name: str) -> bool:
    """Whether algorithm `name` looks at the request (client address, hash key), so
    the data plane must build a PickContext for each pick."""
    return get_factory(name) in _READ_CONTEXT
