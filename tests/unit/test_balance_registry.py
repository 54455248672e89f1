"""The registry: every configurable name resolves; a wrong name says what is valid.

The configuration validates `algorithm` against balance/names.py and the registry maps
those names to code: each name the configuration accepts must build a balancer, and
each registered balancer must be one a configuration can ask for.
"""

from __future__ import annotations

import random

import pytest
from test_runtime import Recorder

from bascule.balance.base import PickContext
from bascule.balance.names import ALGORITHM_NAMES, ALGORITHM_SYNONYMS
from bascule.balance.registry import (
    ALGORITHMS,
    _by_configured_name,
    algorithm_names,
    get_factory,
    reads_context,
)
from bascule.balance.tiers import usable_under
from bascule.config import load_config_text
from bascule.errors import ConfigError
from bascule.model import BackendSnapshot, ServerView
from bascule.proxy.runtime import BackendRuntime
from harness import http_config


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


def configured_backend(algorithm: str) -> str:
    """The YAML of a backend using `algorithm` (hash needs a key)."""
    extra = f"algorithm: {algorithm}"
    if algorithm == "hash":
        extra += "\nhash_key: {source: uri}"
    return http_config(1, {"s1": 2}, backend_extra=extra)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_every_configurable_name_builds_a_balancer_that_picks(name: str) -> None:
    config = load_config_text(configured_backend(name)).backends[0]
    assert config.algorithm == name
    only = ServerView("be", "s1", "127.0.0.1", 2)
    runtime = BackendRuntime(config, BackendSnapshot("be", (only,)), Recorder())
    ctx = PickContext(client_ip="192.0.2.1", hash_key=b"/")
    assert runtime.pick(ctx, frozenset()) == only


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_balancer_is_configurable(name: str) -> None:
    assert load_config_text(configured_backend(name)).backends[0].algorithm == name


def test_registry_and_configuration_know_the_same_names() -> None:
    assert algorithm_names() == ALGORITHM_NAMES


def test_an_unregistered_name_is_refused_by_the_configuration() -> None:
    with pytest.raises(ConfigError, match="is not one of"):
        load_config_text(configured_backend("weighted_response_time"))


@pytest.mark.parametrize("synonym", sorted(ALGORITHM_SYNONYMS))
def test_every_synonym_hint_names_a_configurable_algorithm(synonym: str) -> None:
    assert ALGORITHM_SYNONYMS[synonym] in ALGORITHMS
    with pytest.raises(ConfigError) as refused:
        load_config_text(configured_backend(synonym))
    assert f'"{ALGORITHM_SYNONYMS[synonym]}"' in str(refused.value)


def test_a_registry_that_disagrees_with_the_names_is_refused_at_import() -> None:
    extra = {**ALGORITHMS, "weighted": ALGORITHMS["round_robin"]}
    with pytest.raises(RuntimeError, match=r"not configurable: \['weighted'\]"):
        _by_configured_name(extra)
    fewer = {name: f for name, f in ALGORITHMS.items() if name != "first"}
    with pytest.raises(RuntimeError, match=r"configurable but not registered: \['first'\]"):
        _by_configured_name(fewer)


def test_only_hashing_algorithms_read_the_pick_context() -> None:
    assert [name for name in ALGORITHM_NAMES if reads_context(name)] == [
        "source",
        "ip_hash",
        "hash",
    ]
