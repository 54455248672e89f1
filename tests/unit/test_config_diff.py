"""`diff(old, new)`: what a reload would change, in words."""

from __future__ import annotations

from bascule.config import Config, diff, load_config_text

OLD = """
global: {grace: 10s}
frontends:
  - {name: web, bind: "127.0.0.1:8080", default_backend: app}
  - {name: admin, bind: "127.0.0.1:9000", default_backend: app}
backends:
  - name: app
    servers:
      - {name: s1, address: 10.0.0.1, port: 8000}
      - {name: s2, address: 10.0.0.2, port: 8000}
  - name: old
    servers: [{name: x, address: 10.0.0.9, port: 1}]
"""

NEW = """
global: {grace: 5s}
frontends:
  - name: web
    bind: "127.0.0.1:8081"
    default_backend: app
    timeouts: {client: 1m}
    routes: [{path_prefix: /api, backend: api}]
  - {name: tls, bind: "127.0.0.1:8443", mode: tcp, default_backend: api}
backends:
  - name: app
    algorithm: least_connections
    servers:
      - {name: s1, address: 10.0.0.1, port: 8000, weight: 5}
      - {name: s3, address: "2001:db8::3", port: 8000, backup: true}
  - name: api
    servers: [{name: a1, address: 10.0.1.1, port: 9000}]
"""


def load(text: str) -> Config:
    return load_config_text(text)


def test_identical_configs_have_no_changes() -> None:
    assert diff(load(OLD), load(OLD)) == []


def test_every_kind_of_change_is_listed() -> None:
    assert diff(load(OLD), load(NEW)) == [
        "global changed: grace 10s -> 5s",
        "frontend web changed: bind 127.0.0.1:8080 -> 127.0.0.1:8081; "
        "timeouts.client 30s -> 1m; routes [] -> [*/api -> api]",
        "frontend tls added (tcp on 127.0.0.1:8443, default_backend api)",
        "frontend admin removed",
        "backend app changed: algorithm round_robin -> least_connections",
        "backend api added (round_robin, 1 server)",
        "backend old removed",
        "server app/s1 changed: weight 1 -> 5",
        "server app/s3 added ([2001:db8::3]:8000, weight 1, backup)",
        "server app/s2 removed",
    ]
