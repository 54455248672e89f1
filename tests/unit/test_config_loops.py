"""`validate` warns about servers that send traffic back into the frontend it came from."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address

import pytest

from bascule.config import load_config_text
from bascule.config.addresses import IPAddress
from bascule.config.loops import loop_warnings

HOST_ADDRESS = ip_address("192.0.2.7")


def warnings(text: str, host_has: IPAddress | None = HOST_ADDRESS) -> list[str]:
    config = load_config_text(textwrap.dedent(text).lstrip("\n"), "bascule.yaml")
    return [str(problem) for problem in loop_warnings(config, lambda address: address == host_has)]


def one_frontend(bind: str, server: str, port: int) -> str:
    return f"""
    frontends:
      - name: web
        bind: "{bind}"
        default_backend: app
    backends:
      - name: app
        servers:
          - {{name: real, address: 10.0.0.1, port: {port}}}
          - {{name: self, address: "{server}", port: {port}}}
    """


def test_a_server_that_is_its_own_frontends_bind_is_warned_about_with_both_lines() -> None:
    assert warnings(one_frontend("127.0.0.1:8080", "127.0.0.1", 8080)) == [
        "bascule.yaml:9: backends[0].servers[1]: warning: 127.0.0.1:8080 is this node's own "
        'frontend "web" (bind 127.0.0.1:8080, line 3), which sends traffic back to backend '
        '"app": each request would come back in and be forwarded again, in a loop '
        "(point the server at the real service; a chain of frontends must not lead back)"
    ]


@pytest.mark.parametrize(
    ("bind", "server"),
    [
        ("0.0.0.0:8080", "127.0.0.1"),
        ("0.0.0.0:8080", "127.3.4.5"),
        ("*:8080", "localhost"),
        ("0.0.0.0:8080", "192.0.2.7"),  # an address of this host
        ("0.0.0.0:8080", "0.0.0.0"),
        ("[::]:8080", "::1"),
        ("[::]:8080", "localhost"),
        ("[2001:db8::5]:8080", "2001:db8::5"),
    ],
)
def test_a_wildcard_bind_catches_every_address_of_this_host(bind: str, server: str) -> None:
    [warning] = warnings(one_frontend(bind, server, 8080))
    assert "backends[0].servers[1]: warning: " in warning


@pytest.mark.parametrize(
    ("bind", "server", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8081),  # another port
        ("127.0.0.1:8080", "127.0.0.2", 8080),  # another loopback address, not bound
        ("0.0.0.0:8080", "192.0.2.8", 8080),  # not this host's
        ("[::]:8080", "127.0.0.1", 8080),  # [::] is IPv6 only
        ("0.0.0.0:8080", "::1", 8080),
        ("0.0.0.0:8080", "app.internal", 8080),  # names are not resolved here
    ],
)
def test_a_server_elsewhere_is_not_warned_about(bind: str, server: str, port: int) -> None:
    assert warnings(one_frontend(bind, server, port)) == []


def test_without_host_facts_only_loopback_and_literal_binds_count() -> None:
    assert warnings(one_frontend("0.0.0.0:8080", "192.0.2.7", 8080), host_has=None) == []
    assert warnings(one_frontend("0.0.0.0:8080", "127.0.0.1", 8080), host_has=None) != []


CHAIN = """
frontends:
  - name: edge
    mode: tcp
    bind: "0.0.0.0:443"
    default_backend: to_http
  - name: http
    bind: "127.0.0.1:8080"
    default_backend: app
    routes:
      - {host: admin.example.com, backend: admin}
backends:
  - name: to_http
    servers:
      - {name: local, address: 127.0.0.1, port: 8080}
  - name: app
    servers:
      - {name: a1, address: 10.0.0.1, port: 8000}
  - name: admin
    servers:
      - {name: a1, address: 10.0.0.2, port: 8000}
"""


def test_a_chain_of_frontends_that_does_not_come_back_is_fine() -> None:
    assert warnings(CHAIN) == []


def test_a_chain_that_comes_back_through_a_route_names_every_frontend_on_it() -> None:
    looping = CHAIN.replace(
        "{name: a1, address: 10.0.0.2, port: 8000}", "{name: back, address: 127.0.0.1, port: 443}"
    )
    found = warnings(looping)
    assert len(found) == 2
    assert found[0].startswith("bascule.yaml:14: backends[0].servers[0]: warning: 127.0.0.1:8080")
    assert 'through "http" -> "edge"' in found[0]
    assert found[1].startswith("bascule.yaml:20: backends[2].servers[0]: warning: 127.0.0.1:443")
    assert 'frontend "edge" (bind 0.0.0.0:443, line 4)' in found[1]
    assert 'through "edge" -> "http"' in found[1]
