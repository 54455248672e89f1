"""Values as admins write them: durations, sizes, bind addresses and route matching."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.config import (
    BindAddress,
    RouteConfig,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from bascule.config.findings import InvalidValueError
from bascule.config.units import MAX_DURATION

# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("1.5m", 90.0),
        (".5s", 0.5),
        ("10", 10.0),
        (10, 10.0),
        (0.25, 0.25),
        ("0", 0.0),
    ],
)
def test_durations_in_every_documented_form(written: object, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    "written",
    ["-1s", -3, "soon", "10 sec", "1d", "1m30s", "", True, None, [1], float("nan"), "-inf"],
)
def test_bad_durations_are_rejected_with_the_valid_forms(written: object) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_duration(written)
    assert '"500ms"' in caught.value.hint and "number of seconds" in caught.value.hint


def test_negative_durations_say_negative() -> None:
    with pytest.raises(InvalidValueError, match="negative"):
        parse_duration("-2s")


@pytest.mark.parametrize("written", ["8761h", 10**400, float("inf"), "9" * 400])
def test_durations_longer_than_a_year_are_typos(written: object) -> None:
    with pytest.raises(InvalidValueError, match="longer than a year"):
        parse_duration(written)
    assert parse_duration("8760h") == MAX_DURATION


@given(st.floats(min_value=0, max_value=MAX_DURATION))
def test_formatted_durations_read_back_exactly(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert "e" not in text


@given(st.integers(0, 8760), st.sampled_from([("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]))
def test_whole_numbers_with_a_unit(count: int, unit: tuple[str, float]) -> None:
    suffix, factor = unit
    assert math.isclose(parse_duration(f"{count}{suffix}"), count * factor)


def test_durations_format_in_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (7200, 90, 30, 0.5, 0, 1.5)] == [
        "2h",
        "90s",
        "30s",
        "500ms",
        "0s",
        "1500ms",
    ]


# --- sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "size"),
    [
        (32768, 32768),
        ("32768", 32768),
        ("32k", 32768),
        ("32K", 32768),
        ("32KiB", 32768),
        ("32kb", 32768),
        ("1m", 1048576),
        ("1MiB", 1048576),
        ("2g", 2 * 1024**3),
        ("100b", 100),
    ],
)
def test_sizes_use_binary_units_like_haproxy_and_nginx(written: object, size: int) -> None:
    assert parse_size(written) == size


@pytest.mark.parametrize(
    "written", ["-1", -1, "1.5k", "32 kilobytes", "k", "32ib", 3.0, True, None]
)
def test_bad_sizes_are_rejected_with_the_valid_forms(written: object) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_size(written)
    assert '"32k"' in caught.value.hint


@given(st.integers(0, 2**50))
def test_formatted_sizes_read_back_exactly(size: int) -> None:
    assert parse_size(format_size(size)) == size


# --- bind addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("8080", "no port"),
        ("localhost:8080", "not an IP address"),
        ("::1:8080", "without brackets"),
        ("[127.0.0.1]:80", "not an IPv6 address"),
        ("[::1]", "no port after the brackets"),
        ("127.0.0.1:0", "not a TCP port"),
        ("127.0.0.1:65536", "not a TCP port"),
        (":8080", "no address"),
    ],
)
def test_bad_binds_say_why(written: str, reason: str) -> None:
    with pytest.raises(InvalidValueError, match=reason):
        BindAddress.parse(written)


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("0.0.0.0:80", "127.0.0.1:80", True),
        ("127.0.0.1:80", "0.0.0.0:80", True),
        ("127.0.0.1:80", "127.0.0.1:80", True),
        ("127.0.0.1:80", "127.0.0.2:80", False),
        ("0.0.0.0:80", "0.0.0.0:81", False),
        ("[::]:80", "[::1]:80", True),
        ("[::]:80", "0.0.0.0:80", False),
        ("[::]:80", "127.0.0.1:80", False),
    ],
)
def test_bind_overlap(first: str, second: str, overlap: bool) -> None:
    assert BindAddress.parse(first).overlaps(BindAddress.parse(second)) is overlap


# --- routes ------------------------------------------------------------------------------


def route(host: str | None = None, path_prefix: str | None = None) -> RouteConfig:
    return RouteConfig(host=host, path_prefix=path_prefix, backend="api")


@pytest.mark.parametrize(
    ("request_host", "matches"),
    [
        ("api.example.com", True),
        ("API.Example.COM", True),
        ("api.example.com:8443", True),
        ("api.example.com.", True),
        ("www.example.com", False),
        ("api.example.com.evil.org", False),
        (None, False),
    ],
)
def test_route_host_is_exact_case_insensitive_and_ignores_the_port(
    request_host: str | None, matches: bool
) -> None:
    assert route(host="api.example.com").matches(request_host, "/") is matches


@pytest.mark.parametrize(
    ("request_host", "matches"),
    [
        ("a.example.com", True),
        ("a.b.example.com", True),
        ("A.EXAMPLE.com:80", True),
        ("example.com", False),
        ("badexample.com", False),
    ],
)
def test_wildcard_route_host_matches_one_or_more_labels(request_host: str, matches: bool) -> None:
    assert route(host="*.example.com").matches(request_host, "/") is matches


def test_route_host_in_config_is_lower_cased() -> None:
    assert route(host="API.Example.com").host == "api.example.com"


@pytest.mark.parametrize(
    ("path", "matches"),
    [("/v1", True), ("/v1/users", True), ("/v1?x=1", True), ("/v2/v1", False), ("/", False)],
)
def test_route_path_prefix_is_a_plain_prefix(path: str, matches: bool) -> None:
    assert route(path_prefix="/v1").matches("any.host", path) is matches


def test_route_with_host_and_prefix_needs_both() -> None:
    both = route(host="api.example.com", path_prefix="/v1")
    assert both.matches("api.example.com", "/v1/x")
    assert not both.matches("api.example.com", "/v2")
    assert not both.matches("www.example.com", "/v1")


def test_ipv6_host_header_port_is_stripped() -> None:
    assert route(host="example.com").matches("[::1]:80", "/") is False
