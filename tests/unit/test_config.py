"""Loading a configuration: the examples, defaults, and every problem `bascule validate` reports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bascule.config import ALGORITHM_NAMES, Config, load_config, load_config_text
from bascule.config.yamlsource import read_yaml
from bascule.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def config_text(text: str) -> str:
    """Dedent a YAML snippet written in a triple-quoted string; line 1 is its first line."""
    return textwrap.dedent(text).lstrip("\n")


def problems(text: str) -> list[str]:
    """The lines `bascule validate -c bascule.yaml` would print for `text`."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(config_text(text), "bascule.yaml")
    return [str(problem) for problem in caught.value.problems]


def assert_reports(text: str, expected_start: str, *fragments: str) -> str:
    """Exactly one reported problem starts with `expected_start` and contains `fragments`."""
    found = [line for line in problems(text) if line.startswith(expected_start)]
    assert len(found) == 1, f"expected one problem starting {expected_start!r}, got {found}"
    for fragment in fragments:
        assert fragment in found[0]
    return found[0]


# A valid config that the cross-check tests below break one line at a time.
VALID = """
frontends:
  - name: web
    bind: "127.0.0.1:8080"
    default_backend: app
backends:
  - name: app
    servers:
      - {name: s1, address: 10.0.0.1, port: 8000}
      - {name: s2, address: 10.0.0.2, port: 8000}
"""


# --- the examples ---------------------------------------------------------------------------


def test_minimal_example_is_one_frontend_and_two_local_servers() -> None:
    config = load_config(EXAMPLES / "minimal.yaml")
    assert config.summary() == "1 frontend, 1 backend, 2 servers"
    assert str(config.frontends[0].bind) == "127.0.0.1:8080"
    assert config.frontends[0].mode == "http"
    servers = config.backend(config.frontends[0].default_backend).servers
    assert [(s.address, s.port) for s in servers] == [("127.0.0.1", 9001), ("127.0.0.1", 9002)]
    assert len((EXAMPLES / "minimal.yaml").read_text().splitlines()) <= 10


def test_full_example_shows_http_tcp_routes_backup_and_hash() -> None:
    config = load_config(EXAMPLES / "bascule.yaml")
    assert config.source.endswith("bascule.yaml")
    assert {frontend.mode for frontend in config.frontends} == {"http", "tcp"}
    assert any(frontend.routes for frontend in config.frontends)
    assert len(config.backends) == 3
    assert any(server.backup for backend in config.backends for server in backend.servers)
    hashed = [backend for backend in config.backends if backend.algorithm == "hash"]
    assert hashed and hashed[0].hash_key is not None


def test_load_config_accepts_a_path_and_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config_text(VALID).replace("port: 8000", "port: 0", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value.problems[0]).startswith(f"{path}:8: backends[0].servers[0].port: ")


def test_a_missing_file_is_a_config_error_saying_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    [problem] = caught.value.problems
    assert problem.file.endswith("nope.yaml") and problem.line is None
    assert "cannot read" in problem.message


# --- the model ------------------------------------------------------------------------------


def test_built_in_defaults_fill_every_value_left_out() -> None:
    config = load_config_text(config_text(VALID))
    frontend, backend = config.frontends[0], config.backends[0]
    assert (frontend.mode, frontend.max_connections) == ("http", 10000)
    assert (frontend.timeouts.client, frontend.timeouts.http_request) == (30.0, 10.0)
    assert (frontend.http.max_header_bytes, frontend.http.max_headers) == (32768, 100)
    assert frontend.http.max_request_line == 8192
    assert (backend.algorithm, backend.retries, backend.hash_key) == ("round_robin", 3, None)
    assert (backend.timeouts.connect, backend.timeouts.server) == (2.0, 30.0)
    assert (backend.passive.max_fails, backend.passive.fail_timeout) == (3, 10.0)
    server = backend.servers[0]
    assert (server.weight, server.backup, server.max_connections) == (1, False, 0)
    assert server.initial_state == "up"
    assert (config.global_.grace, config.global_.log_level) == (10.0, "info")


def test_pid_file_and_control_socket_are_absolute_paths_or_none() -> None:
    default = load_config_text(config_text(VALID)).global_
    assert (default.pid_file, default.control_socket) == (None, "/run/bascule/bascule.sock")
    chosen = load_config_text(
        "global: {pid_file: /run/b.pid, control_socket: none}\n" + config_text(VALID)
    ).global_
    assert (chosen.pid_file, chosen.control_socket) == ("/run/b.pid", None)
    assert_reports(
        "global: {control_socket: run/b.sock}\n" + config_text(VALID),
        "bascule.yaml:1: global.control_socket: 'run/b.sock' is not an absolute path",
        "start",
    )


def test_workers_is_not_accepted_yet() -> None:
    assert_reports(
        "global: {workers: 2}\n" + config_text(VALID),
        "bascule.yaml:1: global.workers: unknown key",
    )


def test_defaults_apply_everywhere_and_each_object_can_override_them() -> None:
    config = load_config_text(
        config_text("""
        defaults:
          mode: tcp
          timeouts: {connect: 1s, server: 1m, client: 2m, http_request: 5s}
          retries: 1
          passive: {max_fails: 7, fail_timeout: 20s}
          algorithm: least_connections
          server: {weight: 5, max_connections: 100}
          max_connections: 50
        frontends:
          - {name: a, bind: "127.0.0.1:1", default_backend: x}
          - name: b
            bind: "127.0.0.1:2"
            default_backend: y
            mode: http
            max_connections: 60
            timeouts: {client: 3s}
        backends:
          - name: x
            servers: [{name: s, address: h, port: 1}]
          - name: y
            algorithm: first
            retries: 0
            timeouts: {server: 10s}
            passive: {max_fails: 0}
            servers: [{name: s, address: h, port: 1, weight: 9, max_connections: 1}]
        """)
    )
    a, b = config.frontends
    assert (a.mode, a.max_connections, a.timeouts.client, a.timeouts.http_request) == (
        "tcp",
        50,
        120.0,
        5.0,
    )
    assert (b.mode, b.max_connections, b.timeouts.client, b.timeouts.http_request) == (
        "http",
        60,
        3.0,
        5.0,
    )
    x, y = config.backends
    assert (x.algorithm, x.retries, x.timeouts.connect, x.timeouts.server) == (
        "least_connections",
        1,
        1.0,
        60.0,
    )
    assert (x.passive.max_fails, x.passive.fail_timeout) == (7, 20.0)
    assert (x.servers[0].weight, x.servers[0].max_connections) == (5, 100)
    assert (y.algorithm, y.retries, y.timeouts.connect, y.timeouts.server) == (
        "first",
        0,
        1.0,
        10.0,
    )
    assert (y.passive.max_fails, y.passive.fail_timeout) == (0, 20.0)
    assert (y.servers[0].weight, y.servers[0].max_connections) == (9, 1)


def test_the_model_is_frozen() -> None:
    config = load_config_text(config_text(VALID))
    with pytest.raises(ValidationError):
        config.frontends[0].name = "other"


def test_backend_lookup_by_name() -> None:
    config = load_config_text(config_text(VALID))
    assert config.backend("app").servers[1].name == "s2"
    with pytest.raises(KeyError, match="nope"):
        config.backend("nope")


def test_yaml_anchors_and_merge_keys_work() -> None:
    config = load_config_text(
        config_text("""
        frontends:
          - {name: web, bind: "127.0.0.1:8080", default_backend: app}
        backends:
          - name: app
            servers:
              - &base {name: s1, address: 10.0.0.1, port: 8000, weight: 3}
              - <<: *base
                name: s2
        """)
    )
    s1, s2 = config.backends[0].servers
    assert (s2.name, s2.address, s2.weight) == ("s2", "10.0.0.1", 3)
    assert s1.name == "s1"


def test_sections_left_empty_mean_the_defaults() -> None:
    config = load_config_text(
        config_text(VALID).replace("default_backend: app", "default_backend: app\n    timeouts:")
    )
    assert config.frontends[0].timeouts.client == 30.0


def test_sizes_and_durations_are_read_with_units() -> None:
    config = load_config_text(
        config_text(VALID).replace(
            "default_backend: app",
            "default_backend: app\n"
            "    http: {max_header_bytes: 64KiB, max_request_line: 4k}\n"
            "    timeouts: {client: 1.5m, http_request: 500ms}",
        )
    )
    frontend = config.frontends[0]
    assert (frontend.http.max_header_bytes, frontend.http.max_request_line) == (65536, 4096)
    assert (frontend.timeouts.client, frontend.timeouts.http_request) == (90.0, 0.5)


@pytest.mark.parametrize(
    ("bind", "host", "port", "family", "shown"),
    [
        ("0.0.0.0:80", "0.0.0.0", 80, 4, "0.0.0.0:80"),
        ("*:8080", "0.0.0.0", 8080, 4, "0.0.0.0:8080"),
        ("[::]:443", "::", 443, 6, "[::]:443"),
        ("[2001:DB8::1]:80", "2001:db8::1", 80, 6, "[2001:db8::1]:80"),
    ],
)
def test_bind_forms(bind: str, host: str, port: int, family: int, shown: str) -> None:
    text = config_text(VALID).replace('"127.0.0.1:8080"', f'"{bind}"')
    address = load_config_text(text).frontends[0].bind
    assert (address.host, address.port, address.family, str(address)) == (
        host,
        port,
        family,
        shown,
    )


# --- every cross-check, with its line and path ---------------------------------------------


CROSS_CHECKS = [
    pytest.param(
        VALID + "colour: blue\n",
        "bascule.yaml:10: colour: unknown key",
        ["allowed here: global, defaults, frontends, backends"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        VALID.replace("port: 8000}", "port: 8000, maxconn: 5}", 1),
        "bascule.yaml:8: backends[0].servers[0].maxconn: unknown key",
        ['"max_connections"', "allowed here: name, address, port"],
        id="unknown-nested-key",
    ),
    pytest.param(
        VALID.replace("    default_backend: app\n", "    default_backend: app\n    colour: 1\n"),
        "bascule.yaml:5: frontends[0].colour: unknown key",
        ["bind"],
        id="unknown-frontend-key-on-its-own-line",
    ),
    pytest.param(
        VALID.replace("    default_backend: app\n", "    default_backend: app\n    tls: {}\n"),
        'bascule.yaml:5: frontends[0].tls: unknown key "tls": TLS termination is not supported yet',
        ["pass TLS through", "mode: tcp", "What Bascule does not do yet"],
        id="tls-on-a-frontend-says-what-to-do-today",
    ),
    pytest.param(
        VALID.replace("port: 8000}", "port: 8000, ssl: true}", 1),
        'bascule.yaml:8: backends[0].servers[0].ssl: unknown key "ssl": TLS to servers is '
        "not supported yet",
        ["mode: tcp frontend"],
        id="ssl-on-a-server-says-what-to-do-today",
    ),
    pytest.param(
        VALID.replace(
            "backends:", '  - {name: web, bind: "127.0.0.1:81", default_backend: app}\nbackends:'
        ),
        "bascule.yaml:5: frontends[1].name: duplicate frontend name",
        ['"web"', "line 2"],
        id="duplicate-frontend",
    ),
    pytest.param(
        VALID + "  - name: app\n    servers: [{name: s1, address: h, port: 1}]\n",
        "bascule.yaml:10: backends[1].name: duplicate backend name",
        ['"app"', "line 6"],
        id="duplicate-backend",
    ),
    pytest.param(
        VALID.replace("name: s2", "name: s1"),
        "bascule.yaml:9: backends[0].servers[1].name: duplicate server name",
        ['"s1"', "line 8"],
        id="duplicate-server",
    ),
    pytest.param(
        VALID.replace("default_backend: app", "default_backend: ap"),
        "bascule.yaml:4: frontends[0].default_backend: no backend named",
        ['"ap"', "existing backends: app"],
        id="missing-default-backend",
    ),
    pytest.param(
        VALID.replace(
            "    default_backend: app\n",
            "    default_backend: app\n    routes:\n      - {path_prefix: /v1, backend: api}\n",
        ),
        "bascule.yaml:6: frontends[0].routes[0].backend: no backend named",
        ['"api"', "existing backends: app"],
        id="missing-route-backend",
    ),
    pytest.param(
        VALID.replace("default_backend: app\n", ""),
        "bascule.yaml:2: frontends[0].default_backend: no backend reachable",
        ["default_backend"],
        id="no-backend-reachable",
    ),
    pytest.param(
        VALID.replace("port: 8000}\n      - {name: s2", "port: 70000}\n      - {name: s2"),
        "bascule.yaml:8: backends[0].servers[0].port: 70000 is out of range 1-65535 "
        "(use a TCP port between 1 and 65535)",
        [],
        id="port-range",
    ),
    pytest.param(
        VALID.replace("port: 8000}\n", "port: 8000, weight: 257}\n", 1),
        "bascule.yaml:8: backends[0].servers[0].weight: 257 is out of range 0-256",
        [],
        id="weight-range",
    ),
    pytest.param(
        VALID.replace("port: 8000}", "port: 8000, weight: 0}"),
        "bascule.yaml:7: backends[0].servers: no server can take traffic",
        ["weight 0"],
        id="every-server-weight-zero",
    ),
    pytest.param(
        VALID.replace("port: 8000}\n", "port: 8000, weight: 0}\n", 1).replace(
            "port: 8000}", "port: 8000, backup: true}"
        ),
        "bascule.yaml:7: backends[0].servers: no server can take traffic",
        ["non-backup"],
        id="only-backup-has-weight",
    ),
    pytest.param(
        VALID.replace("      - {name: s2, address: 10.0.0.2, port: 8000}\n", "").replace(
            "port: 8000}", "port: 8000, weight: 0}"
        ),
        "bascule.yaml:7: backends[0].servers: no server can take traffic",
        [],
        id="only-server-weight-zero",
    ),
    pytest.param(
        VALID.replace(
            "backends:",
            '  - {name: api, bind: "0.0.0.0:8080", default_backend: app}\nbackends:',
        ),
        "bascule.yaml:5: frontends[1].bind: 0.0.0.0:8080 conflicts with 127.0.0.1:8080",
        ['"web"', "line 3", "every IPv4 address"],
        id="wildcard-bind-conflict",
    ),
    pytest.param(
        VALID.replace('"127.0.0.1:8080"', '"[::]:8080"').replace(
            "backends:",
            '  - {name: api, bind: "[::1]:8080", default_backend: app}\nbackends:',
        ),
        "bascule.yaml:5: frontends[1].bind: [::1]:8080 conflicts with [::]:8080",
        ["every IPv6 address"],
        id="ipv6-wildcard-bind-conflict",
    ),
    pytest.param(
        VALID.replace(
            "backends:",
            '  - {name: api, bind: "127.0.0.1:8080", default_backend: app}\nbackends:',
        ),
        "bascule.yaml:5: frontends[1].bind: 127.0.0.1:8080 conflicts with 127.0.0.1:8080",
        [],
        id="same-bind",
    ),
    pytest.param(
        VALID.replace(
            "    default_backend: app\n",
            "    default_backend: app\n    mode: tcp\n"
            "    routes:\n      - {host: a.b, backend: app}\n",
        ),
        "bascule.yaml:6: frontends[0].routes: routes only work in mode http",
        ["set mode: http"],
        id="routes-on-tcp",
    ),
    pytest.param(
        "defaults: {mode: tcp}\n"
        + VALID.replace(
            "    default_backend: app\n", "    default_backend: app\n    http: {max_headers: 5}\n"
        ),
        "bascule.yaml:7: frontends[0].http: http limits only apply in mode http",
        [],
        id="http-on-tcp-via-defaults",
    ),
    pytest.param(
        VALID.replace("  - name: app\n", "  - name: app\n    algorithm: hash\n"),
        "bascule.yaml:7: backends[0].hash_key: algorithm hash needs hash_key",
        ["source: uri"],
        id="hash-without-hash-key",
    ),
    pytest.param(
        VALID.replace(
            "  - name: app\n",
            "  - name: app\n    algorithm: hash\n    hash_key: {source: cookie}\n",
        ),
        "bascule.yaml:8: backends[0].hash_key.name: source cookie needs a name",
        [],
        id="cookie-without-name",
    ),
    pytest.param(
        VALID.replace(
            "  - name: app\n",
            "  - name: app\n    algorithm: hash\n    hash_key: {source: header}\n",
        ),
        "bascule.yaml:8: backends[0].hash_key.name: source header needs a name",
        ["X-User-Id"],
        id="header-without-name",
    ),
    pytest.param(
        VALID.replace("  - name: app\n", "  - name: app\n    algorithm: leastconn\n"),
        'bascule.yaml:7: backends[0].algorithm: "leastconn" is not one of '
        + ", ".join(ALGORITHM_NAMES),
        ['"least_connections"'],
        id="unknown-algorithm",
    ),
    pytest.param(
        VALID.replace("  - name: app\n", "  - name: app\n    retries: -1\n"),
        "bascule.yaml:7: backends[0].retries: -1 is negative",
        [],
        id="negative-retries",
    ),
    pytest.param(
        VALID.replace(
            "    default_backend: app\n", "    default_backend: app\n    max_connections: -5\n"
        ),
        "bascule.yaml:5: frontends[0].max_connections: -5 is negative",
        ["0 for unlimited"],
        id="negative-frontend-max-connections",
    ),
    pytest.param(
        VALID.replace("port: 8000}\n", "port: 8000, max_connections: -1}\n", 1),
        "bascule.yaml:8: backends[0].servers[0].max_connections: -1 is negative",
        [],
        id="negative-server-max-connections",
    ),
    pytest.param(
        VALID.replace("  - name: app\n", "  - name: app\n    timeouts: {connect: 0s}\n"),
        "bascule.yaml:7: backends[0].timeouts.connect: must be longer than 0",
        [],
        id="zero-timeout",
    ),
    pytest.param(
        "defaults:\n  timeouts:\n    client: 0\n" + VALID,
        "bascule.yaml:3: defaults.timeouts.client: must be longer than 0",
        [],
        id="zero-timeout-in-defaults",
    ),
    pytest.param(
        VALID.replace("address: 10.0.0.1,", 'address: "",'),
        "bascule.yaml:8: backends[0].servers[0].address: is empty",
        [],
        id="empty-address",
    ),
    pytest.param(
        VALID.replace("address: 10.0.0.1,", 'address: "10.0.0.1 ",'),
        'bascule.yaml:8: backends[0].servers[0].address: "10.0.0.1 " contains spaces',
        [],
        id="address-with-space",
    ),
    pytest.param(
        VALID.replace("address: 10.0.0.1,", 'address: "[2001:db8::1]",'),
        'bascule.yaml:8: backends[0].servers[0].address: "[2001:db8::1]" has brackets',
        ["2001:db8::1)"],
        id="bracketed-ipv6-address",
    ),
    pytest.param(
        VALID.replace("address: 10.0.0.1,", "address: 10.0.0.1:8000,"),
        'bascule.yaml:8: backends[0].servers[0].address: "10.0.0.1:8000" looks like host:port',
        [],
        id="address-with-port",
    ),
    pytest.param(
        VALID.replace('"127.0.0.1:8080"', '"localhost:8080"'),
        'bascule.yaml:3: frontends[0].bind: "localhost" in "localhost:8080" is not an IP',
        ["127.0.0.1:8080"],
        id="bind-host-name",
    ),
    pytest.param(
        VALID.replace('"127.0.0.1:8080"', '"::1:8080"'),
        'bascule.yaml:3: frontends[0].bind: "::1:8080" looks like an IPv6 address without',
        ["[::1]:8080"],
        id="bind-ipv6-without-brackets",
    ),
    pytest.param(
        VALID.replace("    servers:\n", "    servers: []\n").split("      - {")[0],
        "bascule.yaml:7: backends[0].servers: must not be empty",
        [],
        id="no-servers",
    ),
    pytest.param(
        VALID.split("backends:")[0],
        "bascule.yaml:1: backends: required but missing",
        ["examples/minimal.yaml"],
        id="no-backends",
    ),
    pytest.param(
        "frontends: []\n" + VALID.split("    default_backend: app\n")[1],
        "bascule.yaml:1: frontends: must not be empty",
        [],
        id="no-frontends",
    ),
    pytest.param(
        VALID.replace("port: 8000}\n", "port: 8000, port: 8001}\n", 1),
        'bascule.yaml:8: backends[0].servers[0].port: duplicate key "port"',
        ["silently"],
        id="duplicate-yaml-key-in-flow-mapping",
    ),
    pytest.param(
        VALID + "frontends: []\n",
        'bascule.yaml:10: frontends: duplicate key "frontends" (first at line 1)',
        [],
        id="duplicate-yaml-key-top-level",
    ),
]


@pytest.mark.parametrize(("text", "expected_start", "fragments"), CROSS_CHECKS)
def test_each_problem_is_reported_at_its_line_and_path(
    text: str, expected_start: str, fragments: list[str]
) -> None:
    assert_reports(text, expected_start, *fragments)


def test_valid_config_has_no_problems() -> None:
    assert isinstance(load_config_text(config_text(VALID)), Config)


@pytest.mark.parametrize(
    "other_bind",
    ['"[::]:8080"', '"127.0.0.1:8081"', '"127.0.0.2:8080"', '"[::1]:8080"'],
)
def test_binds_that_do_not_overlap_are_accepted(other_bind: str) -> None:
    text = VALID.replace(
        "backends:", f"  - {{name: api, bind: {other_bind}, default_backend: app}}\nbackends:"
    )
    assert len(load_config_text(config_text(text)).frontends) == 2


def test_a_bad_value_in_defaults_is_reported_once_at_its_own_line() -> None:
    text = (
        "defaults:\n  retries: many\n"
        + VALID
        + VALID.split("backends:\n")[1].replace("name: app", "name: app2")
    )
    found = problems(text)
    assert found == [
        'bascule.yaml:2: defaults.retries: "many" is not a whole number (write digits only, e.g. 3)'
    ]


# --- reading the file at all --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "bascule.yaml: the file is empty"),
        ("# only a comment\n", "bascule.yaml: the file is empty"),
        ("- a\n- b\n", "bascule.yaml:1: the top level is a list, not a mapping"),
        ("just text\n", "bascule.yaml:1: the top level is a single value, not a mapping"),
        ("frontends:\n  - name: [web\nbackends: []\n", "bascule.yaml:3: YAML syntax error: "),
        ("frontends:\n\t- name: web\n", "bascule.yaml:2: YAML syntax error: "),
        ("frontends:\n  - bind: *:8080\n", "bascule.yaml:2: YAML syntax error: "),
    ],
)
def test_unreadable_yaml_is_one_problem_with_its_line(text: str, expected: str) -> None:
    [problem] = problems(text)
    assert problem.startswith(expected)


def test_syntax_error_hints_at_tabs_and_unquoted_star() -> None:
    assert "tabs" in problems("frontends:\n\t- name: web\n")[0]
    assert '"*:8080"' in problems("frontends:\n  - bind: *:8080\n")[0]


# --- everything at once -------------------------------------------------------------------


MANY_PROBLEMS = """
global:
  grace: soon
frontends:
  - name: web
    bind: "0.0.0.0:80"
    default_backend: ap
    mode: htp
  - name: web
    bind: "127.0.0.1:80"
    default_backend: app
backends:
  - name: app
    algorithm: hash
    servers:
      - {name: s1, address: "[::1]", port: 70000}
      - {name: s1, address: 10.0.0.2, port: 80, weight: 300, colour: red}
  - name: app
    servers: []
"""


def test_every_problem_is_reported_in_one_run_sorted_by_line() -> None:
    found = problems(MANY_PROBLEMS)
    expected_starts = [
        "bascule.yaml:2: global.grace: ",
        "bascule.yaml:6: frontends[0].default_backend: ",
        "bascule.yaml:7: frontends[0].mode: ",
        "bascule.yaml:8: frontends[1].name: duplicate",
        "bascule.yaml:9: frontends[1].bind: ",
        "bascule.yaml:13: backends[0].hash_key: ",
        "bascule.yaml:15: backends[0].servers[0].address: ",
        "bascule.yaml:15: backends[0].servers[0].port: ",
        "bascule.yaml:16: backends[0].servers[1].name: duplicate",
        "bascule.yaml:16: backends[0].servers[1].weight: ",
        "bascule.yaml:16: backends[0].servers[1].colour: ",
        "bascule.yaml:17: backends[1].name: duplicate",
        "bascule.yaml:18: backends[1].servers: must not be empty",
    ]
    assert len(found) == len(expected_starts), found
    for start in expected_starts:
        assert any(line.startswith(start) for line in found), (start, found)
    assert found == sorted(found, key=lambda line: int(line.split(":")[1]))


def test_messages_never_leak_pydantic_jargon() -> None:
    for line in problems(MANY_PROBLEMS):
        _assert_plain_english(line)


def _assert_plain_english(line: str) -> None:
    for jargon in ("pydantic", "type=", "Input should", "errors.pydantic.dev", "[type"):
        assert jargon not in line, line
    assert line.endswith(")"), f"no hint in {line!r}"


# Any value a user might type, anywhere: loading never crashes, and every problem is
# located, hinted and free of pydantic jargon.
YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    ("global", "grace"),
    ("global", "log_level"),
    ("frontends", 0, "bind"),
    ("frontends", 0, "mode"),
    ("frontends", 0, "max_connections"),
    ("frontends", 0, "timeouts"),
    ("frontends", 0, "http", "max_header_bytes"),
    ("frontends", 0, "routes"),
    ("backends", 0, "algorithm"),
    ("backends", 0, "hash_key"),
    ("backends", 0, "servers", 0, "address"),
    ("backends", 0, "servers", 0, "port"),
    ("backends", 0, "servers", 0, "weight"),
    ("backends", 0, "servers", 0, "backup"),
    ("backends", 0, "servers", 0, "initial_state"),
    ("backends", 0, "servers"),
    ("backends", 0, "check"),
    ("backends", 0, "check", "http"),
    ("backends", 0, "servers", 0, "check"),
    ("backends", 0, "min_healthy"),
    ("defaults",),
    ("defaults", "check"),
    ("frontends",),
]


@pytest.mark.parametrize("field", FIELDS, ids=lambda path: ".".join(map(str, path)))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=YAML_VALUES)
def test_any_value_anywhere_gives_located_plain_problems(
    field: tuple[str | int, ...], value: object
) -> None:
    document = yaml.safe_load(config_text(VALID))
    document.setdefault("global", {})
    node = document
    for part in field[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[field[-1]] = value
    try:
        load_config_text(yaml.safe_dump(document), "bascule.yaml")
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.line is not None, problem
            _assert_plain_english(str(problem))


# --- the documentation ------------------------------------------------------------------


DOCS = EXAMPLES.parent / "docs" / "configuration.md"


def _yaml_blocks(markdown: str) -> list[str]:
    return [block.split("```")[0] for block in markdown.split("```yaml\n")[1:]]


def test_docs_show_the_minimal_example_as_it_is() -> None:
    assert (EXAMPLES / "minimal.yaml").read_text() in _yaml_blocks(DOCS.read_text())


@pytest.mark.parametrize("block", _yaml_blocks(DOCS.read_text()))
def test_every_yaml_example_in_the_docs_is_valid(block: str) -> None:
    top_level = set(yaml.safe_load(block))
    if top_level <= {"global", "defaults"}:
        block += config_text(VALID)  # a section on its own: complete it
    if top_level <= {"global", "defaults"} or {"frontends", "backends"} <= top_level:
        assert isinstance(load_config_text(block), Config)
    else:  # a fragment: at least well-formed, without duplicate keys
        assert read_yaml(block, "docs").findings == []
