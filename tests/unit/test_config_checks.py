"""Health-check configuration: `check:` blocks, how they merge, every load-time rejection."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bascule.config import (
    BackendConfig,
    CheckConfig,
    Config,
    HttpCheckConfig,
    MinHealthy,
    ServerConfig,
    diff,
    load_config,
    load_config_text,
)
from bascule.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def config_text(text: str) -> str:
    """Dedent a YAML snippet written in a triple-quoted string; line 1 is its first line."""
    return textwrap.dedent(text).lstrip("\n")


def load(text: str) -> Config:
    return load_config_text(config_text(text), "test.yaml")


def problems(text: str) -> list[str]:
    """The lines `bascule validate -c test.yaml` would print for `text`."""
    with pytest.raises(ConfigError) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


# An http frontend on `app`, a tcp frontend on `db`. `app` has an http check and
# two servers; tests below insert lines into it.
BASE = """
frontends:
  - {name: web, bind: "127.0.0.1:8080", default_backend: app}
  - {name: sql, bind: "127.0.0.1:5432", mode: tcp, default_backend: db}
backends:
  - name: app
    check:
      type: http
      interval: 2s
      http: {path: /health}
    servers:
      - {name: s1, address: 10.0.0.1, port: 8000}
      - {name: s2, address: 10.0.0.2, port: 8000}
  - name: db
    servers:
      - {name: d1, address: 10.0.0.5, port: 5432}
"""


def with_check_lines(*lines: str) -> str:
    """BASE with `lines` added to app's check block (they start at line 10)."""
    added = "".join(f"      {line}\n" for line in lines)
    return BASE.replace("      http: {path: /health}\n", f"      http: {{path: /health}}\n{added}")


def app(text: str) -> BackendConfig:
    return load(text).backend("app")


# --- what a check looks like once loaded ------------------------------------------------


def test_a_backend_without_check_has_no_active_check_and_neither_do_its_servers() -> None:
    db = load(BASE).backend("db")
    assert db.check.type == "none" and not db.check.enabled
    assert [server.check for server in db.servers] == [db.check]


def test_check_defaults_are_haproxys_and_derived_intervals_follow_interval() -> None:
    check = app(BASE).check
    assert (check.interval, check.rise, check.fall, check.jitter, check.port) == (2, 2, 3, 0, None)
    assert (check.fast_interval, check.down_interval, check.timeout) == (2.0, 2.0, 2.0)
    assert check.http is not None
    assert (check.http.method, check.http.host, check.http.expect_status) == (
        "GET",
        None,
        ((200, 399),),
    )
    assert check.http.max_body == 65536


@pytest.mark.parametrize(
    ("interval", "timeout"), [("500ms", 0.5), ("2s", 2.0), ("10s", 2.0), ("1m", 2.0)]
)
def test_timeout_defaults_to_the_interval_but_at_most_2s(interval: str, timeout: float) -> None:
    check = app(with_check_lines().replace("interval: 2s", f"interval: {interval}")).check
    assert check.timeout == timeout


def test_every_interval_can_be_set() -> None:
    text = BASE.replace(
        "interval: 2s",
        "interval: 5s\n      fast_interval: 1s\n      down_interval: 30s\n      timeout: 800ms",
    )
    check = app(text).check
    assert (check.interval, check.fast_interval, check.down_interval, check.timeout) == (
        5.0,
        1.0,
        30.0,
        0.8,
    )


@pytest.mark.parametrize("written", ['"10%"', "10%", "0.1", '"10 %"'])
def test_jitter_is_a_fraction_written_as_percent_or_fraction(written: str) -> None:
    assert app(with_check_lines(f"jitter: {written}")).check.jitter == 0.1


def test_every_part_of_an_http_check_is_read() -> None:
    text = BASE.replace(
        "      http: {path: /health}\n",
        "      port: 8081\n"
        "      http:\n"
        "        method: head\n"
        "        path: /health?full=1\n"
        "        host: www.example.com\n"
        '        expect_status: [200, "204-206", "3xx"]\n'
        "        max_body: 4k\n",
    )
    check = app(text).check
    assert check.target_port(8000) == 8081
    http = check.http
    assert http is not None
    assert (http.method, http.path, http.host, http.max_body) == (
        "HEAD",
        "/health?full=1",
        "www.example.com",
        4096,
    )
    assert http.expect_status == ((200, 200), (204, 206), (300, 399))
    assert http.expected_status_text == "200, 204-206, 300-399"
    assert [http.accepts_status(code) for code in (199, 200, 201, 205, 302, 400)] == [
        False,
        True,
        False,
        True,
        True,
        False,
    ]


def test_expect_status_may_be_a_single_code_or_range() -> None:
    one = app(with_check_lines().replace("{path: /health}", "{path: /h, expect_status: 204}"))
    assert one.check.http is not None and one.check.http.expect_status == ((204, 204),)
    text = with_check_lines().replace("{path: /health}", '{path: /h, expect_status: "2xx"}')
    assert app(text).check.http == HttpCheckConfig(path="/h", expect_status=((200, 299),))


def test_command_and_agent_checks_are_read() -> None:
    text = BASE.replace(
        "  - name: db\n",
        '  - name: db\n    check:\n      type: agent\n      agent: {port: 9999, send: "ping\\n"}\n',
    ).replace(
        "      type: http\n      interval: 2s\n      http: {path: /health}\n",
        "      type: command\n"
        "      command: {path: /usr/local/bin/check-web, args: [--port, 8080, -v]}\n",
    )
    config = load(text)
    command = config.backend("app").check.command
    assert command is not None
    assert (command.path, command.args) == ("/usr/local/bin/check-web", ("--port", "8080", "-v"))
    assert str(command) == "/usr/local/bin/check-web --port 8080 -v"
    db = config.backend("db")
    assert db.check.agent is not None
    assert (db.check.agent.port, db.check.agent.send) == (9999, "ping\n")
    assert db.check.target_port(5432) == 9999


def test_backend_health_settings_and_their_defaults() -> None:
    db = load(BASE).backend("db")
    assert (db.slow_start, db.on_down, str(db.min_healthy)) == (0.0, "none", "0")
    passive = db.passive
    assert (passive.consecutive_5xx, passive.max_ejection_time, passive.max_ejected_percent) == (
        0,
        300.0,
        50,
    )
    text = BASE.replace(
        "  - name: app\n",
        "  - name: app\n"
        "    slow_start: 30s\n"
        "    on_down: Shutdown_Sessions\n"
        '    min_healthy: "50%"\n'
        "    passive: {consecutive_5xx: 5, max_ejection_time: 2m, max_ejected_percent: 30%}\n",
    )
    backend = app(text)
    assert (backend.slow_start, backend.on_down) == (30.0, "shutdown_sessions")
    assert backend.min_healthy == MinHealthy(percent=50)
    passive = backend.passive
    assert (passive.consecutive_5xx, passive.max_ejection_time, passive.max_ejected_percent) == (
        5,
        120.0,
        30,
    )


def test_a_long_fail_timeout_raises_the_default_ejection_cap_with_it() -> None:
    text = BASE.replace("  - name: db\n", "  - name: db\n    passive: {fail_timeout: 10m}\n")
    assert load(text).backend("db").passive.max_ejection_time == 600.0


def test_initial_state_check_first_is_accepted_with_a_check() -> None:
    text = BASE.replace("port: 8000}\n", "port: 8000, initial_state: check_first}\n", 1)
    assert app(text).servers[0].initial_state == "check_first"


# --- min_healthy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("0", MinHealthy(count=0)),
        ("2", MinHealthy(count=2)),
        ('"2"', MinHealthy(count=2)),
        ('"50%"', MinHealthy(percent=50)),
        ("12.5%", MinHealthy(percent=12.5)),
    ],
)
def test_min_healthy_is_a_count_or_a_percentage(written: str, expected: MinHealthy) -> None:
    text = BASE.replace("  - name: app\n", f"  - name: app\n    min_healthy: {written}\n")
    assert app(text).min_healthy == expected


@pytest.mark.parametrize(
    ("minimum", "total", "threshold"),
    [
        (MinHealthy(count=2), 4, 2),
        (MinHealthy(percent=50), 3, 2),
        (MinHealthy(percent=50), 4, 2),
        (MinHealthy(percent=30), 10, 3),
        (MinHealthy(percent=0), 5, 0),
        (MinHealthy(percent=100), 5, 5),
        (MinHealthy(percent=12.5), 8, 1),
    ],
)
def test_min_healthy_threshold_rounds_a_share_up(
    minimum: MinHealthy, total: int, threshold: int
) -> None:
    assert minimum.threshold(total) == threshold


@given(st.integers(0, 100), st.integers(0, 1000))
def test_a_percentage_threshold_is_the_fewest_servers_that_reach_it(
    percent: int, total: int
) -> None:
    threshold = MinHealthy(percent=percent).threshold(total)
    assert 0 <= threshold <= total
    assert threshold * 100 >= percent * total
    assert threshold == 0 or (threshold - 1) * 100 < percent * total


def test_min_healthy_is_a_count_or_a_percentage_never_both() -> None:
    with pytest.raises(ValidationError):
        MinHealthy(count=1, percent=50)
    with pytest.raises(ValidationError):
        MinHealthy()


# --- merging: defaults -> backend -> server ------------------------------------------------


def test_defaults_check_is_merged_key_by_key_into_each_backend() -> None:
    text = (
        "defaults:\n"
        "  check: {type: tcp, interval: 5s, rise: 3, jitter: 5%, http: {path: /ping, host: a.b}}\n"
        "  slow_start: 20s\n"
        "  on_down: shutdown_sessions\n"
        '  min_healthy: "50%"\n'
        "  passive: {consecutive_5xx: 4, max_ejected_percent: 20}\n" + config_text(BASE)
    )
    config = load_config_text(text)
    app_check, db_check = config.backend("app").check, config.backend("db").check
    # app sets type, interval and http.path itself; the rest comes from defaults.
    assert (app_check.type, app_check.interval, app_check.rise, app_check.jitter) == (
        "http",
        2.0,
        3,
        0.05,
    )
    assert app_check.http == HttpCheckConfig(path="/health", host="a.b")
    # db sets nothing: it gets the tcp check, and no http block (that is for http checks).
    assert (db_check.type, db_check.interval, db_check.timeout, db_check.http) == (
        "tcp",
        5.0,
        2.0,
        None,
    )
    for backend in config.backends:
        assert (backend.slow_start, backend.on_down, str(backend.min_healthy)) == (
            20.0,
            "shutdown_sessions",
            "50%",
        )
        assert (backend.passive.consecutive_5xx, backend.passive.max_ejected_percent) == (4, 20)


def test_servers_without_check_carry_their_backends_check() -> None:
    backend = app(BASE)
    assert [server.check for server in backend.servers] == [backend.check, backend.check]


def test_a_server_check_overrides_only_the_keys_it_sets() -> None:
    text = with_check_lines("timeout: 1s").replace(
        "port: 8000}\n", "port: 8000, check: {port: 8081, http: {host: s1.local}}}\n", 1
    )
    backend = app(text)
    s1, s2 = backend.servers
    assert s1.check.port == 8081 and s1.check.timeout == 1.0
    assert s1.check.http == HttpCheckConfig(path="/health", host="s1.local")
    assert s2.check == backend.check
    assert backend.check.port is None  # the backend's own check is unchanged


def test_a_server_can_switch_the_check_type_or_turn_it_off() -> None:
    text = BASE.replace("port: 8000}\n", "port: 8000, check: {type: tcp}}\n", 1).replace(
        "address: 10.0.0.2, port: 8000}", "address: 10.0.0.2, port: 8000, check: {type: none}}"
    )
    s1, s2 = app(text).servers
    assert (s1.check.type, s1.check.http, s1.check.interval) == ("tcp", None, 2.0)
    assert (s2.check.type, s2.check.enabled) == ("none", False)


def test_a_server_interval_recomputes_the_intervals_derived_from_it() -> None:
    text = BASE.replace("port: 8000}\n", "port: 8000, check: {interval: 500ms}}\n", 1)
    check = app(text).servers[0].check
    assert (check.interval, check.fast_interval, check.down_interval, check.timeout) == (
        0.5,
        0.5,
        0.5,
        0.5,
    )


def test_an_empty_server_check_means_the_backends() -> None:
    text = BASE.replace("port: 8000}\n", "port: 8000, check: }\n", 1)
    backend = app(text)
    assert backend.servers[0].check == backend.check


def test_servers_built_in_code_take_their_backends_check_unless_given_one() -> None:
    check = CheckConfig(type="tcp", interval=1)
    own = CheckConfig(type="tcp", port=81)
    backend = BackendConfig(
        name="b",
        check=check,
        servers=(
            ServerConfig(name="a", address="10.0.0.1", port=80),
            ServerConfig(name="b", address="10.0.0.2", port=80, check=own),
        ),
    )
    assert [server.check for server in backend.servers] == [check, own]
    assert (check.timeout, check.fast_interval) == (1.0, 1.0)


# --- every rejection, with its line and path --------------------------------------------


REJECTIONS = [
    pytest.param(
        with_check_lines("timeout: 3s"),
        "test.yaml:10: backends[0].check.timeout: 3s is longer than interval 2s "
        "(use a timeout shorter than the interval)",
        id="timeout-longer-than-interval",
    ),
    pytest.param(
        with_check_lines("rise: 0"),
        "test.yaml:10: backends[0].check.rise: 0 is below the minimum of 1 (use 1 or more: "
        "the passing checks in a row that bring a server UP)",
        id="rise-0",
    ),
    pytest.param(
        with_check_lines("fall: 0"),
        "test.yaml:10: backends[0].check.fall: 0 is below the minimum of 1 (use 1 or more: "
        "the failed checks in a row that take a server DOWN)",
        id="fall-0",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{method: GET}"),
        "test.yaml:9: backends[0].check.http.path: an http check needs a path "
        "(add path: /health, the URL the check requests)",
        id="http-without-path",
    ),
    pytest.param(
        BASE.replace("      http: {path: /health}\n", ""),
        "test.yaml:7: backends[0].check.http: type http needs an http: block "
        "(add http: {path: /health})",
        id="http-without-http-block",
    ),
    pytest.param(
        BASE.replace("type: http", "type: tcp"),
        "test.yaml:9: backends[0].check.http: an http: block only applies to type http, "
        "and this check is type tcp (set type: http, or remove http:)",
        id="http-block-with-type-tcp",
    ),
    pytest.param(
        with_check_lines("command: {path: /bin/true}"),
        "test.yaml:10: backends[0].check.command: a command: block only applies to type "
        "command, and this check is type http",
        id="command-block-with-type-http",
    ),
    pytest.param(
        BASE.replace("type: http", "type: agent").replace("http: {path: /health}", "agent: {}"),
        "test.yaml:9: backends[0].check.agent.port: an agent check needs the port its agent "
        "listens on (add port: 9999, like HAProxy agent-port)",
        id="agent-without-port",
    ),
    pytest.param(
        BASE.replace("type: http", "type: agent").replace("      http: {path: /health}\n", ""),
        "test.yaml:7: backends[0].check.agent: type agent needs an agent: block "
        "(add agent: {port: 9999})",
        id="agent-without-agent-block",
    ),
    pytest.param(
        BASE.replace("type: http", "type: agent").replace(
            "http: {path: /health}", "agent: {port: 9999}\n      port: 80"
        ),
        "test.yaml:10: backends[0].check.port: an agent check connects to agent.port, not to "
        "port (remove port)",
        id="agent-with-port",
    ),
    pytest.param(
        BASE.replace("type: http", "type: command").replace("      http: {path: /health}\n", ""),
        "test.yaml:7: backends[0].check.command: type command needs a command: block",
        id="command-without-command-block",
    ),
    pytest.param(
        BASE.replace("type: http", "type: command").replace(
            "http: {path: /health}", "command: {path: check-web}"
        ),
        'test.yaml:9: backends[0].check.command.path: "check-web" is not an absolute path',
        id="command-relative-path",
    ),
    pytest.param(
        BASE.replace("{path: /health}", '{path: /health, expect_body_regex: "^(ok"}'),
        'test.yaml:9: backends[0].check.http.expect_body_regex: "^(ok" is not a valid regular '
        "expression: missing ), unterminated subpattern at position 1 "
        "(fix the pattern; for plain text use expect_body)",
        id="bad-regex",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: /health, expect_status: [200, 600]}"),
        "test.yaml:9: backends[0].check.http.expect_status: 600 is not an HTTP status "
        "(use codes between 100 and 599)",
        id="status-out-of-range",
    ),
    pytest.param(
        BASE.replace("{path: /health}", '{path: /health, expect_status: ["399-200"]}'),
        'test.yaml:9: backends[0].check.http.expect_status: "399-200" is a reversed range '
        '(write the lower code first: "200-399")',
        id="status-reversed-range",
    ),
    pytest.param(
        BASE.replace("{path: /health}", '{path: /health, expect_status: ["ok"]}'),
        'test.yaml:9: backends[0].check.http.expect_status: "ok" is not a status',
        id="status-not-a-status",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: /health, expect_status: []}"),
        "test.yaml:9: backends[0].check.http.expect_status: lists no status",
        id="status-empty",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: health}"),
        'test.yaml:9: backends[0].check.http.path: "health" does not start with / '
        '(write "/health")',
        id="path-without-slash",
    ),
    pytest.param(
        BASE.replace("{path: /health}", '{path: "/health check"}'),
        'test.yaml:9: backends[0].check.http.path: "/health check" is not a plain path',
        id="path-with-space",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: /health, method: POST}"),
        'test.yaml:9: backends[0].check.http.method: "POST" is not one of GET, HEAD, OPTIONS',
        id="post-check",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: /health, method: HEAD, expect_body: ok}"),
        "test.yaml:9: backends[0].check.http.expect_body: the answer to HEAD has no body, so "
        "expect_body can never match (use method: GET, or remove expect_body)",
        id="head-with-expect-body",
    ),
    pytest.param(
        BASE.replace("{path: /health}", "{path: /health, max_body: 2m}"),
        "test.yaml:9: backends[0].check.http.max_body: 2m is more than 1m",
        id="max-body-too-large",
    ),
    pytest.param(
        with_check_lines("jitter: 60%"),
        'test.yaml:10: backends[0].check.jitter: "60%" is outside 0%-50% '
        '(use a percentage between 0% and 50%, e.g. "10%", or a fraction such as 0.1)',
        id="jitter-above-50-percent",
    ),
    pytest.param(
        with_check_lines("jitter: 0.7"),
        "test.yaml:10: backends[0].check.jitter: 0.7 is outside 0%-50%",
        id="jitter-fraction-above-half",
    ),
    pytest.param(
        with_check_lines("jitter: -5%"),
        'test.yaml:10: backends[0].check.jitter: "-5%" is negative',
        id="jitter-negative",
    ),
    pytest.param(
        BASE.replace("type: http", "type: httpchk"),
        'test.yaml:7: backends[0].check.type: "httpchk" is not one of none, tcp, http, '
        'command, agent ("httpchk" is called "http" here)',
        id="haproxy-check-type",
    ),
    pytest.param(
        with_check_lines("inter: 1s"),
        'test.yaml:10: backends[0].check.inter: unknown key "inter" ("inter" is called '
        '"interval" here;',
        id="haproxy-inter",
    ),
    pytest.param(
        with_check_lines("interval: 0s").replace("      interval: 2s\n", ""),
        "test.yaml:9: backends[0].check.interval: must be longer than 0",
        id="zero-interval",
    ),
    pytest.param(
        BASE.replace("port: 8000}\n", "port: 8000, check: {timeout: 5s}}\n", 1),
        "test.yaml:11: backends[0].servers[0].check.timeout: 5s is longer than interval 2s",
        id="server-timeout-longer-than-backend-interval",
    ),
    pytest.param(
        BASE.replace("port: 8000}\n", "port: 8000, check: {http: {path: /x}, type: tcp}}\n", 1),
        "test.yaml:11: backends[0].servers[0].check.http: an http: block only applies to "
        "type http, and this check is type tcp",
        id="server-http-block-with-type-tcp",
    ),
    pytest.param(
        BASE.replace("port: 5432}", "port: 5432, initial_state: check_first}"),
        "test.yaml:15: backends[1].servers[0].initial_state: check_first waits for a passing "
        "health check, and this server has none (give the backend a check, "
        "e.g. check: {type: tcp}, or use initial_state: down)",
        id="check-first-without-check",
    ),
    pytest.param(
        BASE.replace(
            "port: 8000}\n", "port: 8000, initial_state: check_first, check: {type: none}}\n", 1
        ),
        "test.yaml:11: backends[0].servers[0].initial_state: check_first waits for a passing",
        id="check-first-with-check-turned-off",
    ),
    pytest.param(
        BASE.replace("  - name: db\n", "  - name: db\n    passive: {consecutive_5xx: 5}\n"),
        "test.yaml:14: backends[1].passive.consecutive_5xx: consecutive_5xx counts HTTP "
        "responses, and this backend is only used by mode tcp frontends (sql) "
        "(remove consecutive_5xx; max_fails still counts failed connections)",
        id="consecutive-5xx-on-tcp-backend",
    ),
    pytest.param(
        BASE.replace("  - name: db\n", "  - name: db\n    passive: {max_ejected_percent: 101}\n"),
        "test.yaml:14: backends[1].passive.max_ejected_percent: 101 is out of range 0-100 "
        "(use a percentage between 0 and 100)",
        id="max-ejected-percent-above-100",
    ),
    pytest.param(
        BASE.replace("  - name: db\n", "  - name: db\n    passive: {max_ejected_percent: -1}\n"),
        "test.yaml:14: backends[1].passive.max_ejected_percent: -1 is out of range 0-100",
        id="max-ejected-percent-negative",
    ),
    pytest.param(
        BASE.replace("  - name: db\n", "  - name: db\n    passive: {max_ejection_time: 5s}\n"),
        "test.yaml:14: backends[1].passive.max_ejection_time: 5s is shorter than fail_timeout "
        "10s (the first ejection already lasts fail_timeout; use at least 10s)",
        id="max-ejection-time-below-fail-timeout",
    ),
    pytest.param(
        BASE.replace("  - name: db\n", "  - name: db\n    passive: {consecutive_5xx: -1}\n"),
        "test.yaml:14: backends[1].passive.consecutive_5xx: -1 is negative",
        id="consecutive-5xx-negative",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", "  - name: app\n    min_healthy: 3\n"),
        "test.yaml:6: backends[0].min_healthy: 3 is more than the 2 servers of this backend, "
        'which would always be degraded (use at most 2, or a share such as "50%")',
        id="min-healthy-above-server-count",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", '  - name: app\n    min_healthy: "150%"\n'),
        'test.yaml:6: backends[0].min_healthy: "150%" is more than 100%',
        id="min-healthy-above-100-percent",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", "  - name: app\n    min_healthy: -1\n"),
        "test.yaml:6: backends[0].min_healthy: -1 is negative",
        id="min-healthy-negative",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", "  - name: app\n    min_healthy: {count: 2}\n"),
        "test.yaml:6: backends[0].min_healthy: a mapping is not a count or a percentage",
        id="min-healthy-mapping",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", "  - name: app\n    on_down: shutdown-sessions\n"),
        'test.yaml:6: backends[0].on_down: "shutdown-sessions" is not one of none, '
        'shutdown_sessions ("shutdown-sessions" is called "shutdown_sessions" here)',
        id="on-down-haproxy-spelling",
    ),
    pytest.param(
        BASE.replace("  - name: app\n", "  - name: app\n    slowstart: 30s\n"),
        'test.yaml:6: backends[0].slowstart: unknown key "slowstart" ("slowstart" is called '
        '"slow_start" here;',
        id="haproxy-slowstart",
    ),
    pytest.param(
        "defaults:\n  check: {rise: 0}\n" + config_text(BASE),
        "test.yaml:2: defaults.check.rise: 0 is below the minimum of 1",
        id="bad-value-in-defaults-check",
    ),
    pytest.param(
        "defaults:\n  check: {timeout: 5s}\n" + config_text(BASE),
        "test.yaml:8: backends[0].check.timeout: 5s is longer than interval 2s",
        id="defaults-timeout-longer-than-a-backends-interval",
    ),
]


@pytest.mark.parametrize(("text", "expected_start"), REJECTIONS)
def test_each_unworkable_check_setting_is_rejected_at_its_line(
    text: str, expected_start: str
) -> None:
    found = problems(text)
    matching = [line for line in found if line.startswith(expected_start)]
    assert len(matching) == 1, f"expected one problem starting {expected_start!r}, got {found}"
    assert matching[0].endswith(")"), "every problem says what to do"


def test_a_bad_backend_check_is_reported_once_not_again_on_servers_that_override_it() -> None:
    text = with_check_lines("timeout: 3s").replace(
        "port: 8000}\n", "port: 8000, check: {port: 8081}}\n", 1
    )
    assert problems(text) == [
        "test.yaml:10: backends[0].check.timeout: 3s is longer than interval 2s "
        "(use a timeout shorter than the interval)"
    ]


def test_consecutive_5xx_is_fine_on_a_backend_an_http_frontend_uses() -> None:
    text = BASE.replace("  - name: app\n", "  - name: app\n    passive: {consecutive_5xx: 5}\n")
    assert app(text).passive.consecutive_5xx == 5
    shared = BASE.replace("default_backend: app}", "default_backend: db}", 1).replace(
        "  - name: db\n", "  - name: db\n    passive: {consecutive_5xx: 5}\n"
    )
    assert load(shared).backend("db").passive.consecutive_5xx == 5


def test_consecutive_5xx_from_defaults_is_not_an_error_on_tcp_backends() -> None:
    config = load_config_text("defaults:\n  passive: {consecutive_5xx: 5}\n" + config_text(BASE))
    assert config.backend("db").passive.consecutive_5xx == 5


def test_an_http_check_is_fine_on_a_backend_a_tcp_frontend_uses() -> None:
    text = BASE.replace(
        "  - name: db\n", "  - name: db\n    check: {type: http, http: {path: /ready}}\n"
    )
    assert load(text).backend("db").check.type == "http"


# --- diff ----------------------------------------------------------------------------------


def test_diff_reports_a_backend_check_change_once_and_server_overrides_apart() -> None:
    old = load(BASE.replace("port: 8000}\n", "port: 8000, check: {port: 8081}}\n", 1))
    new = load(
        BASE.replace("interval: 2s", "interval: 1s\n      jitter: 10%").replace(
            "address: 10.0.0.2, port: 8000}",
            "address: 10.0.0.2, port: 8000, check: {http: {path: /ready}}}",
        )
    )
    changes = diff(old, new)
    assert changes[0] == (
        "backend app changed: check.interval 2s -> 1s; check.fast_interval 2s -> 1s; "
        "check.down_interval 2s -> 1s; check.timeout 2s -> 1s; check.jitter 0% -> 10%"
    )
    # s1 keeps its own port: its check changed too and is listed; so is s2's new path.
    assert changes[1].startswith("server app/s1 changed: check.interval 2s -> 1s;")
    assert changes[2].startswith("server app/s2 changed: check.interval 2s -> 1s;")
    assert changes[2].endswith("check.http.path /health -> /ready")
    assert len(changes) == 3


def test_diff_shows_a_new_check_and_backend_health_settings_in_words() -> None:
    new = BASE.replace("  - name: db\n", "  - name: db\n    min_healthy: 1\n    slow_start: 1m\n")
    new = new.replace(
        "    servers:\n      - {name: d1",
        "    check: {type: http, http: {path: /ready, expect_status: [200, 2xx]}}\n"
        "    servers:\n      - {name: d1",
    )
    assert diff(load(BASE), load(new)) == [
        "backend db changed: check.type none -> http; check.http none -> GET /ready expecting "
        "200, 200-299; slow_start 0s -> 1m; min_healthy 0 -> 1"
    ]


def test_an_added_backend_says_which_check_it_has() -> None:
    new = (
        BASE
        + "  - name: cache\n    check: {type: tcp}\n    servers: [{name: c, address: h, port: 1}]\n"
    )
    assert diff(load(BASE), load(new)) == ["backend cache added (round_robin, 1 server, tcp check)"]


# --- the example -------------------------------------------------------------------------


def test_the_full_example_shows_health_checks() -> None:
    config = load_config(EXAMPLES / "bascule.yaml")
    checked = [backend for backend in config.backends if backend.check.enabled]
    assert {backend.check.type for backend in checked} >= {"http", "tcp"}
    http = next(backend for backend in checked if backend.check.type == "http")
    assert http.check.http is not None and http.check.http.path.startswith("/")
    assert http.slow_start > 0 and http.on_down == "shutdown_sessions"
    overridden = [s for s in http.servers if s.check != http.check]
    assert overridden, "the example shows a per-server check override"


# --- properties ---------------------------------------------------------------------------


@given(
    interval=st.floats(0.001, 3600),
    timeout=st.one_of(st.none(), st.floats(0.001, 3600)),
)
def test_a_check_never_times_out_after_its_interval(interval: float, timeout: float | None) -> None:
    try:
        given = {} if timeout is None else {"timeout": timeout}
        check = CheckConfig(type="tcp", interval=interval, **given)
    except ValidationError:
        assert timeout is not None and timeout > interval
        return
    assert check.timeout <= check.interval
    assert check.timeout == (min(interval, 2.0) if timeout is None else timeout)
    assert check.fast_interval == check.down_interval == interval


@given(st.floats(0, 0.5))
def test_any_jitter_fraction_up_to_half_is_kept_as_is(fraction: float) -> None:
    assert math.isclose(CheckConfig(jitter=fraction).jitter, fraction)


@given(st.floats(0.5, 10, exclude_min=True))
def test_jitter_above_half_is_refused(fraction: float) -> None:
    with pytest.raises(ValidationError):
        CheckConfig(jitter=fraction)
