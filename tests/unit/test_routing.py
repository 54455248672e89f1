"""A frontend routes on plain values read once from its rules, and routes exactly as the
rules say (`RouteConfig.matches`, tested in test_config_values.py, is their meaning)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_runtime import Recorder

from bascule.config import Config, load_config_text
from bascule.model import BackendSnapshot
from bascule.proxy.http_policy import RequestHead
from bascule.proxy.listener import FrontendRuntime
from bascule.proxy.pool import UpstreamPool
from bascule.proxy.runtime import BackendRuntime

CONFIG = """
frontends:
  - name: web
    bind: "127.0.0.1:1"
    default_backend: other
    routes:
      - {host: api.example.com, path_prefix: /v1, backend: api_v1}
      - {host: api.example.com, backend: api}
      - {host: "*.static.example.com", backend: static}
      - {path_prefix: /admin, backend: admin}
backends:
"""
BACKENDS = ("api_v1", "api", "static", "admin", "other")


@pytest.fixture(scope="module")
def config() -> Config:
    servers = "    servers: [{name: s1, address: 127.0.0.1, port: 2}]\n"
    return load_config_text(CONFIG + "".join(f"  - name: {b}\n{servers}" for b in BACKENDS))


@pytest.fixture(scope="module")
def frontend(config: Config) -> Iterator[FrontendRuntime]:
    loop = asyncio.new_event_loop()  # stored only: nothing here runs on it
    runtimes = {
        b.name: BackendRuntime(b, BackendSnapshot(b.name, ()), Recorder()) for b in config.backends
    }
    yield FrontendRuntime(config.frontends[0], runtimes, loop, UpstreamPool())
    loop.close()


def head(host: bytes, target: bytes) -> RequestHead:
    return RequestHead(
        b"GET", target, "1.1", host, [(b"Host", host)], None, False, True, True, False
    )


def by_the_rules(config: Config, host: bytes, target: bytes) -> str:
    """The backend the first RouteConfig that matches names, else the default."""
    fe = config.frontends[0]
    path = target.split(b"?", 1)[0].decode("latin-1")
    for rule in fe.routes:
        if rule.matches(host.decode("latin-1"), path):
            return rule.backend
    return fe.default_backend


@pytest.mark.parametrize(
    ("host", "target", "backend"),
    [
        (b"api.example.com", b"/v1/users", "api_v1"),
        (b"API.Example.com:8080", b"/v1?x=1", "api_v1"),
        (b"api.example.com.", b"/v2", "api"),
        (b"img.static.example.com", b"/admin", "static"),
        (b"static.example.com", b"/admin/x", "admin"),
        (b"www.example.com", b"/adminx?q", "admin"),
        (b"www.example.com", b"/", "other"),
        (b"", b"/v1", "other"),
        (b"[::1]:80", b"/ad", "other"),
    ],
)
def test_the_first_matching_rule_wins(
    frontend: FrontendRuntime, config: Config, host: bytes, target: bytes, backend: str
) -> None:
    assert frontend.route(head(host, target)).name == backend
    assert by_the_rules(config, host, target) == backend


def test_rules_are_plain_values_not_config_models(frontend: FrontendRuntime) -> None:
    for pattern, prefix, backend in frontend.routes:
        assert pattern is None or type(pattern) is str
        assert prefix is None or type(prefix) is str
        assert isinstance(backend, BackendRuntime)


HOSTS = st.sampled_from(
    ["api.example.com", "API.EXAMPLE.COM", "a.static.example.com", "static.example.com", "x"]
).flatmap(lambda h: st.sampled_from([h, h + ":80", h + "."]))
PATHS = st.lists(st.sampled_from(["/", "v1", "admin", "x", "?", "q"]), max_size=5).map("".join)


@given(host=HOSTS, path=PATHS)
def test_routing_agrees_with_the_rules(
    frontend: FrontendRuntime, config: Config, host: str, path: str
) -> None:
    target = ("/" + path).encode()
    assert frontend.route(head(host.encode(), target)).name == by_the_rules(
        config, host.encode(), target
    )
