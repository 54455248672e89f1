"""Settings of the HTTP hardening: body limit, keep-alive timeout, forwarding trust."""

from __future__ import annotations

import textwrap

import pytest

from bascule.config import Config, load_config_text
from bascule.errors import ConfigError

BASE = """
{defaults}frontends:
  - name: web
    bind: "127.0.0.1:8080"
    mode: {mode}
    default_backend: app
{frontend}backends:
  - name: app
    servers: [{{name: s1, address: 10.0.0.1, port: 8000}}]
"""


def config(frontend: str = "", defaults: str = "", mode: str = "http") -> Config:
    text = BASE.format(
        defaults=textwrap.dedent(defaults),
        frontend=textwrap.indent(textwrap.dedent(frontend), "    "),
        mode=mode,
    ).lstrip("\n")
    return load_config_text(text, "bascule.yaml")


def problems(frontend: str = "", defaults: str = "", mode: str = "http") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config(frontend, defaults, mode)
    return [str(problem) for problem in caught.value.problems]


def test_built_in_defaults() -> None:
    frontend = config().frontends[0]
    assert frontend.http.max_request_body == 0  # no limit, like HAProxy
    assert frontend.timeouts.http_keep_alive == frontend.timeouts.http_request == 10.0
    assert (frontend.trusted_networks, frontend.forwarded) == ((), "append")


def test_keep_alive_follows_http_request_unless_set() -> None:
    assert config("timeouts: {http_request: 4s}\n").frontends[0].timeouts.http_keep_alive == 4.0
    set_ = config("timeouts: {http_request: 4s, http_keep_alive: 75s}\n").frontends[0]
    assert set_.timeouts.http_keep_alive == 75.0
    from_defaults = config(defaults="defaults: {timeouts: {http_request: 3s}}\n").frontends[0]
    assert from_defaults.timeouts.http_keep_alive == 3.0


@pytest.mark.parametrize(("text", "size"), [("10m", 10 * 1024**2), ("1g", 1024**3), (0, 0)])
def test_max_request_body_takes_sizes(text: object, size: int) -> None:
    assert (
        config(f"http: {{max_request_body: {text}}}\n").frontends[0].http.max_request_body == size
    )


def test_max_request_body_refuses_a_negative_size() -> None:
    (line,) = problems("http: {max_request_body: -1}\n")
    assert "frontends[0].http.max_request_body" in line and "negative" in line


def test_trusted_networks_are_normalised_and_inherited_from_defaults() -> None:
    own = config('trusted_networks: ["10.0.0.0/8", "2001:DB8::/32", 192.0.2.7]\n').frontends[0]
    assert own.trusted_networks == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32")
    inherited = config(defaults='defaults: {trusted_networks: ["10.0.0.0/8"]}\n').frontends[0]
    assert inherited.trusted_networks == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"10.0.0.1/8"', "did you mean 10.0.0.0/8?"),
        ("cdn.example", "is not a network"),
        ('"10.0.0.0/33"', "is not a network"),
    ],
)
def test_bad_trusted_networks_are_refused_with_a_hint(value: str, fragment: str) -> None:
    (line,) = problems(f"trusted_networks: [{value}]\n")
    assert line.startswith("bascule.yaml:6: frontends[0].trusted_networks[0]:")
    assert fragment in line


def test_forwarded_mode_is_append_or_replace() -> None:
    assert config("forwarded: replace\n").frontends[0].forwarded == "replace"
    (line,) = problems("forwarded: prepend\n")
    assert "is not one of append, replace" in line


@pytest.mark.parametrize("key", ['trusted_networks: ["10.0.0.0/8"]', "forwarded: replace"])
def test_forwarding_settings_are_refused_on_a_tcp_frontend(key: str) -> None:
    (line,) = problems(key + "\n", mode="tcp")
    assert "this frontend is mode tcp" in line


def test_defaults_forwarding_settings_skip_tcp_frontends() -> None:
    defaults = 'defaults: {trusted_networks: ["10.0.0.0/8"], forwarded: replace}\n'
    assert config(defaults=defaults, mode="tcp").frontends[0].trusted_networks == ()


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("max_request_body: 1m", "http.max_request_body"),
        ("client_max_body_size: 1m", "http.max_request_body"),
        ("keepalive_timeout: 75s", "timeouts.http_keep_alive"),
    ],
)
def test_an_http_setting_at_the_wrong_level_says_where_it_belongs(written: str, meant: str) -> None:
    (problem,) = problems(written + "\n")
    key = written.split(":")[0]
    assert f'unknown key "{key}" ("{key}" is called "{meant}" here;' in problem
