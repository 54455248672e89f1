"""`validate` warns about servers that are this node's own frontends."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from bascule.config import load_config_text, servers_on_own_frontends

CONFIG = """\
frontends:
  - {{name: web, bind: "{bind}", mode: {mode}, default_backend: app}}
backends:
  - name: app
    servers:
      - {{name: ok, address: 10.0.0.1, port: 8080}}
      - {{name: s1, address: "{address}", port: {port}}}
"""


def warnings(bind: str, address: str, port: int, local: list[str], mode: str = "http") -> list[str]:
    text = CONFIG.format(bind=bind, address=address, port=port, mode=mode)
    config = load_config_text(textwrap.dedent(text), "bascule.yaml")
    return [
        str(problem)
        for problem in servers_on_own_frontends(config, [ipaddress.ip_address(a) for a in local])
    ]


@pytest.mark.parametrize(
    ("bind", "address", "local"),
    [
        ("127.0.0.1:8080", "127.0.0.1", []),
        ("*:8080", "127.0.0.1", []),
        ("*:8080", "192.0.2.10", ["192.0.2.10"]),
        ("192.0.2.10:8080", "192.0.2.10", []),
        ("[::]:8080", "::1", []),
    ],
)
def test_a_server_on_a_frontends_bind_is_a_warning_at_its_line(
    bind: str, address: str, local: list[str]
) -> None:
    (line,) = warnings(bind, address, 8080, local)
    assert line.startswith("bascule.yaml:7: backends[0].servers[1].address: warning: ")
    assert f"{address}:8080 is where frontend web listens" in line
    assert "508 Loop Detected" in line


@pytest.mark.parametrize(
    ("bind", "address", "port", "local"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8081, []),  # another port
        ("127.0.0.1:8080", "127.0.0.2", 8080, []),  # another address of the bind
        ("*:8080", "192.0.2.10", 8080, []),  # not an address of this host
        ("[::]:8080", "127.0.0.1", 8080, []),  # an IPv6 listener does not take IPv4 here
        ("*:8080", "app.internal", 8080, []),  # a host name: resolved only at start
    ],
)
def test_servers_elsewhere_are_not_warned_about(
    bind: str, address: str, port: int, local: list[str]
) -> None:
    assert warnings(bind, address, port, local) == []


def test_a_tcp_frontend_loop_is_said_to_exhaust_file_descriptors() -> None:
    (line,) = warnings("127.0.0.1:8080", "127.0.0.1", 8080, [], mode="tcp")
    assert "until file descriptors run out" in line
