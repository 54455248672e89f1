"""The registry: every configurable name resolves; a wrong name says what is valid."""

from __future__ import annotations

import random

import pytest

from bascule.balance.base import PickContext
from bascule.balance.registry import ALGORITHMS, algorithm_names, get_factory
from bascule.balance.tiers import usable_under
from bascule.model import ServerView


def test_the_documented_names_are_registered() -> None:
    assert algorithm_names() == (
        "round_robin",
        "least_connections",
        "source",
        "ip_hash",
        "hash",
        "random",
        "first",
    )
    assert tuple(ALGORITHMS) == algorithm_names()


def test_ip_hash_is_the_same_algorithm_as_source() -> None:
    assert get_factory("ip_hash") is get_factory("source")


@pytest.mark.parametrize("name", algorithm_names())
def test_every_factory_builds_a_working_algorithm(name: str) -> None:
    only = ServerView("web", "s1", "198.18.0.1", 8080)
    algorithm = get_factory(name)((only,), {}, random.Random(0))
    ctx = PickContext(client_ip="192.0.2.1", hash_key=b"/")
    assert algorithm.pick(ctx, usable_under({}), frozenset()) == only


def test_unknown_name_is_refused_with_the_valid_choices() -> None:
    with pytest.raises(KeyError) as refused:
        get_factory("roundrobin")
    message = str(refused.value)
    assert "'roundrobin'" in message
    for name in algorithm_names():
        assert name in message
