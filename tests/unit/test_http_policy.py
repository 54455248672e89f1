"""Request side of the HTTP policy: what is refused (status, reason), what is forwarded."""

from __future__ import annotations

import httptools
import pytest

from bascule.errors import ClientProtocolError, UpstreamProtocolError
from bascule.proxy.http_policy import (
    MAX_CONTENT_LENGTH,
    ForwardingPolicy,
    HeadLimits,
    RequestHead,
    check_request_head,
    check_trailers,
    ignorable_upgrade,
    server_host_header,
    upstream_request_head,
    with_server_host,
)

LIMITS = HeadLimits()
HOST = (b"Host", b"example.com")
Headers = list[tuple[bytes, bytes]]


def check(
    headers: Headers,
    method: bytes = b"GET",
    target: bytes = b"/",
    version: str = "1.1",
    limits: HeadLimits = LIMITS,
) -> RequestHead:
    return check_request_head(method, target, version, headers, limits)


def refusal(
    headers: Headers,
    method: bytes = b"GET",
    target: bytes = b"/",
    version: str = "1.1",
    limits: HeadLimits = LIMITS,
) -> ClientProtocolError:
    with pytest.raises(ClientProtocolError) as refused:
        check(headers, method, target, version, limits)
    return refused.value


def parse_request(raw: bytes) -> tuple[bytes, bytes, str, Headers]:
    """Parse a request head with httptools, as a server behind us would."""
    headers: Headers = []
    url = bytearray()

    class Sink:
        def on_url(self, piece: bytes) -> None:
            url.extend(piece)

        def on_header(self, name: bytes, value: bytes) -> None:
            headers.append((name, value))

    parser = httptools.HttpRequestParser(Sink())
    parser.feed_data(raw)
    return parser.get_method(), bytes(url), parser.get_http_version(), headers


# -- framing ------------------------------------------------------------------------------


def test_content_length_and_transfer_encoding_together_are_refused() -> None:
    error = refusal([HOST, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], b"POST")
    assert error.status == 400
    assert "both Transfer-Encoding and Content-Length" in error.reason


@pytest.mark.parametrize("second", [b"5", b"6"])
def test_duplicate_content_length_is_refused_even_with_equal_values(second: bytes) -> None:
    error = refusal([HOST, (b"Content-Length", b"5"), (b"content-length", second)], b"POST")
    assert (error.status, error.reason) == (400, "duplicate Content-Length header in the request")


@pytest.mark.parametrize(
    "value",
    [b"1000,1000", b"1000, 1000", b"+5", b"-5", b" 5", b"5 ", b"5\t", b"0x10", b"1e3", b"", b"5.0"],
)
def test_malformed_content_length_is_refused(value: bytes) -> None:
    error = refusal([HOST, (b"Content-Length", value)], b"POST")
    assert error.status == 400
    assert "malformed Content-Length" in error.reason


@pytest.mark.parametrize(
    "value", [str(MAX_CONTENT_LENGTH + 1).encode(), b"18446744073709551616", b"9" * 5000]
)
def test_too_large_content_length_is_refused(value: bytes) -> None:
    error = refusal([HOST, (b"Content-Length", value)], b"POST")
    assert error.status == 400
    assert "too large" in error.reason


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"0", 0), (b"512", 512), (b"000012", 12), (str(MAX_CONTENT_LENGTH).encode(), 2**62)],
)
def test_valid_content_length_is_parsed(value: bytes, length: int) -> None:
    head = check([HOST, (b"Content-Length", value)], b"POST")
    assert (head.content_length, head.chunked) == (length, False)


@pytest.mark.parametrize(
    "value",
    [
        b"gzip, chunked",
        b"chunked, chunked",
        b"identity",
        b"gzip",
        b"chunked ",
        b" chunked",
        b"chunked;ext=1",
        b"xchunked",
        b"chunked\xa0",
        b"",
    ],
)
def test_transfer_encoding_other_than_exactly_chunked_is_refused(value: bytes) -> None:
    error = refusal([HOST, (b"Transfer-Encoding", value)], b"POST")
    assert error.status == 400
    assert "only a single 'chunked' is accepted" in error.reason


def test_duplicate_transfer_encoding_headers_are_refused() -> None:
    headers = [HOST, (b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")]
    error = refusal(headers, b"POST")
    assert (error.status, error.reason) == (
        400,
        "duplicate Transfer-Encoding header in the request",
    )


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b"CHUNKED"])
def test_chunked_is_accepted_in_any_case(value: bytes) -> None:
    head = check([HOST, (b"Transfer-Encoding", value)], b"POST")
    assert (head.chunked, head.content_length) == (True, None)
    assert all(name.lower() != b"transfer-encoding" for name, _ in head.headers)


def test_transfer_encoding_in_http10_request_is_refused() -> None:
    error = refusal([HOST, (b"Transfer-Encoding", b"chunked")], b"POST", version="1.0")
    assert error.status == 400
    assert "HTTP/1.0" in error.reason


@pytest.mark.parametrize("name", [b"Content_Length", b"transfer_encoding"])
def test_underscore_spellings_of_framing_headers_are_refused(name: bytes) -> None:
    error = refusal([HOST, (name, b"5")], b"POST")
    assert error.status == 400
    assert "CGI" in error.reason


def test_request_without_body_has_no_framing() -> None:
    head = check([HOST])
    assert (head.content_length, head.chunked) == (None, False)


# -- Host ---------------------------------------------------------------------------------


def test_missing_host_on_http11_is_refused() -> None:
    error = refusal([(b"Accept", b"*/*")])
    assert (error.status, error.reason) == (400, "missing Host header (required in HTTP/1.1)")


def test_duplicate_host_is_refused() -> None:
    error = refusal([HOST, (b"host", b"example.com")])
    assert (error.status, error.reason) == (400, "duplicate Host header (send exactly one)")


@pytest.mark.parametrize("value", [b"", b" ", b"\t"])
def test_empty_host_is_refused(value: bytes) -> None:
    error = refusal([(b"Host", value)])
    assert (error.status, error.reason) == (400, "empty Host header")


@pytest.mark.parametrize(
    "value",
    [
        b"exa mple.com",
        b"example.com/path",
        b"user@example.com",
        b'exam"ple',
        b"example.com:80x",
        b"a:b:c",
        b":80",
        b"[2001:db8::1",
        b"[]",
        b"example.com]",
        b"ex\xc3\xa4mple.com",
        b"example.com\\",
    ],
)
def test_host_with_invalid_characters_or_shape_is_refused(value: bytes) -> None:
    error = refusal([(b"Host", value)])
    assert error.status == 400
    assert error.reason.startswith("invalid Host header")


@pytest.mark.parametrize(
    "value",
    [
        b"example.com",
        b"EXAMPLE.com:8080",
        b"192.0.2.1",
        b"[2001:db8::1]",
        b"[2001:db8::1]:443",
        b"xn--bcher-kva.example",
        b"my_host.internal:",
    ],
)
def test_valid_hosts_are_accepted_and_exposed_for_routing(value: bytes) -> None:
    assert check([(b"Host", value)]).host == value


def test_trailing_whitespace_of_host_is_not_part_of_the_host() -> None:
    assert check([(b"Host", b"example.com \t")]).host == b"example.com"


@pytest.mark.parametrize(
    "value",
    [b"example.com:65536", b"example.com:99999999", b"[2001:db8::1]:70000", b"h:1" + b"0" * 40],
)
def test_host_with_a_port_out_of_range_is_refused(value: bytes) -> None:
    error = refusal([(b"Host", value)])
    assert error.status == 400
    assert error.reason.startswith("port out of range (0-65535) in Host header")


@pytest.mark.parametrize("value", [b"example.com:", b"example.com:65535", b"h:0", b"h:00080"])
def test_host_with_an_empty_or_in_range_port_is_accepted(value: bytes) -> None:
    assert check([(b"Host", value)]).host == value


def test_absolute_form_with_a_port_out_of_range_is_refused() -> None:
    error = refusal([HOST], target=b"http://example.com:65536/")
    assert (error.status, error.reason) == (
        400,
        "port out of range in the request target's authority 'example.com:65536'",
    )


def test_http10_request_without_host_gets_the_servers_address_as_host() -> None:
    head = check([(b"Accept", b"*/*")], version="1.0")
    assert head.host == b""
    assert head.headers == [(b"Accept", b"*/*")]  # the proxy adds Host once it picked a server
    wire = upstream_request_head(head, "192.0.2.1", 1234)
    sent = with_server_host(wire, server_host_header("10.0.0.5", 8080).encode())
    method, _, version, headers = parse_request(sent)
    assert (method, version) == (b"GET", "1.1")
    assert headers[0] == (b"Host", b"10.0.0.5:8080")
    assert [name for name, _ in headers].count(b"Host") == 1


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [("10.0.0.5", 80, "10.0.0.5"), ("2001:db8::10", 8080, "[2001:db8::10]:8080")],
)
def test_server_host_header_brackets_ipv6_and_omits_port_80(
    host: str, port: int, expected: str
) -> None:
    assert server_host_header(host, port) == expected


# -- header bytes and limits --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"a\rb",
        b"a\nb",
        b"a\r\nX-Injected: 1",
        b"a\x00b",
        b"\x00",
        b"a\x7fb",
        b"\x1b[31m",
        b"a\x0bb",
    ],
)
def test_control_bytes_in_values_are_refused(value: bytes) -> None:
    error = refusal([HOST, (b"X-Note", value)])
    assert error.status == 400
    assert "control byte" in error.reason
    assert "X-Note" in error.reason


@pytest.mark.parametrize(
    "name", [b"X Note", b"X-Note\t", b" X-Note", b"X:Note", b"X\x00", b"X\r", b"X\n", b"X\xe4"]
)
def test_invalid_bytes_in_names_are_refused(name: bytes) -> None:
    error = refusal([HOST, (name, b"v")])
    assert error.status == 400
    assert "header name" in error.reason


def test_empty_header_name_is_refused() -> None:
    error = refusal([HOST, (b"", b"v")])
    assert error.status == 400
    assert "empty" in error.reason


def test_tab_and_obs_text_in_values_are_accepted_unchanged() -> None:
    head = check([HOST, (b"X-Note", b"a\tb \x85\xa0\xff")])
    assert (b"X-Note", b"a\tb \x85\xa0\xff") in head.headers


def test_exactly_max_headers_is_accepted_and_one_more_gets_431() -> None:
    limits = HeadLimits(max_headers=5)
    headers = [HOST] + [(b"X-%d" % i, b"v") for i in range(4)]
    assert len(check(headers, limits=limits).headers) == 5
    error = refusal([*headers, (b"X-Last", b"v")], limits=limits)
    assert (error.status, error.reason) == (431, "too many request headers: 6, limit 5")


def test_header_bytes_count_name_value_and_four_separator_bytes() -> None:
    headers = [HOST, (b"X-Pad", b"p" * 30)]  # (4 + 11 + 4) + (5 + 30 + 4) = 58
    assert check(headers, limits=HeadLimits(max_header_bytes=58)).headers == headers
    error = refusal(headers, limits=HeadLimits(max_header_bytes=57))
    assert (error.status, error.reason) == (431, "request header section is 58 bytes, limit 57")


# -- request line -------------------------------------------------------------------------


def test_target_longer_than_the_limit_gets_414() -> None:
    limits = HeadLimits(max_request_line=10)
    assert check([HOST], target=b"/" + b"a" * 9, limits=limits).target == b"/aaaaaaaaa"
    error = refusal([HOST], target=b"/" + b"a" * 10, limits=limits)
    assert error.status == 414
    assert "11 bytes" in error.reason


@pytest.mark.parametrize("target", [b"/a b", b"/a\tb", b"/a\x00", b"/a\x7f", b"/a\r\n", b""])
def test_target_with_space_or_control_bytes_is_refused(target: bytes) -> None:
    error = refusal([HOST], target=target)
    assert error.status == 400
    assert "space/CTL" in error.reason


@pytest.mark.parametrize("target", [b"a/b", b"ftp://example.com/", b"example.com:443", b"?x"])
def test_target_must_be_origin_form_or_http_url(target: bytes) -> None:
    error = refusal([HOST], target=target)
    assert error.status == 400
    assert "must start with '/'" in error.reason


def test_asterisk_target_only_with_options() -> None:
    assert check([HOST], method=b"OPTIONS", target=b"*").target == b"*"
    error = refusal([HOST], method=b"GET", target=b"*")
    assert (error.status, error.reason) == (400, "request target '*' is only allowed with OPTIONS")


def test_connect_gets_501() -> None:
    error = refusal([HOST], method=b"CONNECT", target=b"/")
    assert error.status == 501
    assert "CONNECT" in error.reason


@pytest.mark.parametrize("method", [b"GE T", b"", b"GET\x00", b"G(E)T", b"G\xc3\xa9T"])
def test_method_must_be_a_token(method: bytes) -> None:
    error = refusal([HOST], method=method)
    assert error.status == 400
    assert "not a valid token" in error.reason


@pytest.mark.parametrize("version", ["2.0", "0.9", "1.2", "", "HTTP/1.1"])
def test_versions_other_than_10_and_11_get_505(version: str) -> None:
    error = refusal([HOST], version=version)
    assert error.status == 505
    assert "not supported" in error.reason


def test_absolute_form_becomes_origin_form_and_its_authority_the_host() -> None:
    head = check([(b"Host", b"other.example")], target=b"http://Example.com:8080/a/b?c=d")
    assert (head.target, head.host) == (b"/a/b?c=d", b"Example.com:8080")
    assert head.headers == [(b"Host", b"Example.com:8080")]


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://example.com", b"/"),
        (b"HTTPS://example.com?q=1", b"/?q=1"),
        (b"http://example.com#frag", b"/"),
    ],
)
def test_absolute_form_without_path_gets_slash(target: bytes, path: bytes) -> None:
    assert check([HOST], target=target).target == path


def test_absolute_form_supplies_host_to_http10_request_without_one() -> None:
    head = check([], target=b"http://example.com/x", version="1.0")
    assert (head.host, head.headers) == (b"example.com", [(b"Host", b"example.com")])


@pytest.mark.parametrize(
    "target", [b"http://user:pw@example.com/", b"http:///x", b'http://exa"mple/', b"http://a]/"]
)
def test_absolute_form_with_bad_authority_is_refused(target: bytes) -> None:
    error = refusal([HOST], target=target)
    assert error.status == 400
    assert "request target" in error.reason


# -- hop-by-hop headers and connection ----------------------------------------------------


def test_hop_by_hop_headers_are_removed_and_end_to_end_kept_in_order() -> None:
    headers = [
        HOST,
        (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Checksum"),
        (b"Upgrade", b"websocket"),
        (b"Proxy-Authorization", b"Basic dXNlcjpwdw=="),
        (b"Accept", b"*/*"),
    ]
    assert check(headers).headers == [
        HOST,
        (b"Trailer", b"X-Checksum"),  # end to end: the trailers it announces pass too
        (b"Proxy-Authorization", b"Basic dXNlcjpwdw=="),
        (b"Accept", b"*/*"),
    ]


def test_headers_named_in_connection_are_removed_case_insensitively() -> None:
    headers = [
        HOST,
        (b"X-Secret", b"1"),
        (b"Connection", b"close, x-secret,  X-Other ,"),
        (b"x-other", b"2"),
        (b"Accept", b"*/*"),
    ]
    assert check(headers).headers == [HOST, (b"Accept", b"*/*")]


def test_connection_cannot_remove_host_or_framing() -> None:
    headers = [HOST, (b"Content-Length", b"3"), (b"Connection", b"Host, Content-Length")]
    head = check(headers, b"POST")
    assert (head.host, head.content_length) == (b"example.com", 3)
    assert head.headers == [HOST]
    assert b"\r\nContent-Length: 3\r\n" in upstream_request_head(head, "192.0.2.1", 1)


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", [], True),
        ("1.1", [b"keep-alive"], True),
        ("1.1", [b"close"], False),
        ("1.1", [b"Keep-Alive, CLOSE"], False),
        ("1.1", [b"x-a", b"close"], False),
        ("1.0", [], False),
        ("1.0", [b"keep-alive"], True),
        ("1.0", [b"Keep-Alive"], True),
        ("1.0", [b"keep-alive", b"close"], False),
    ],
)
def test_client_keep_alive(version: str, connection: list[bytes], keep_alive: bool) -> None:
    headers = [HOST, *((b"Connection", value) for value in connection)]
    assert check(headers, version=version).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        (b"GET", True),
        (b"HEAD", True),
        (b"OPTIONS", True),
        (b"TRACE", True),
        (b"PUT", True),
        (b"DELETE", True),
        (b"POST", False),
        (b"PATCH", False),
    ],
)
def test_idempotent_methods(method: bytes, idempotent: bool) -> None:
    assert check([HOST], method=method).idempotent is idempotent


@pytest.mark.parametrize(
    ("version", "expect", "expects_continue"),
    [
        ("1.1", b"100-continue", True),
        ("1.1", b"100-Continue", True),
        ("1.1", b"something-else", False),
        ("1.0", b"100-continue", False),  # RFC 9110 10.1.1: ignored for HTTP/1.0
    ],
)
def test_expect_100_continue(version: str, expect: bytes, expects_continue: bool) -> None:
    head = check([HOST, (b"Expect", expect)], b"PUT", version=version)
    assert head.expects_continue is expects_continue
    assert (b"Expect", expect) in head.headers  # end-to-end: the server sees it too


def test_reasons_show_offending_bytes_escaped() -> None:
    error = refusal([HOST, (b"X-Note", b"ok\x01")])
    assert error.reason == "control byte '\\x01' in value of request header 'X-Note'"


# -- upstream request ---------------------------------------------------------------------


def test_upstream_request_exact_bytes() -> None:
    head = check([HOST, (b"Accept", b"*/*"), (b"Connection", b"keep-alive")], target=b"/x?y=1")
    assert upstream_request_head(head, "192.0.2.1", 51000) == (
        b"GET /x?y=1 HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Accept: */*\r\n"
        b"X-Forwarded-For: 192.0.2.1\r\n"
        b"X-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: example.com\r\n"
        b"Forwarded: for=192.0.2.1;host=example.com;proto=http\r\n"
        b"X-Real-IP: 192.0.2.1\r\n"
        b"\r\n"
    )


def test_existing_x_forwarded_for_values_are_kept_and_client_appended() -> None:
    headers = [
        HOST,
        (b"X-Forwarded-For", b"203.0.113.5"),
        (b"x-forwarded-for", b"198.51.100.2, 198.51.100.3"),
    ]
    out = upstream_request_head(check(headers), "192.0.2.1", 1)
    assert _forwarded_headers(out)[b"x-forwarded-for"] == [
        b"203.0.113.5, 198.51.100.2, 198.51.100.3, 192.0.2.1"
    ]


def test_empty_x_forwarded_for_is_replaced_by_the_client() -> None:
    out = upstream_request_head(check([HOST, (b"X-Forwarded-For", b"")]), "192.0.2.1", 1)
    assert _forwarded_headers(out)[b"x-forwarded-for"] == [b"192.0.2.1"]


def test_client_supplied_proto_and_host_are_replaced_not_duplicated() -> None:
    headers = [HOST, (b"X-Forwarded-Proto", b"https"), (b"x-forwarded-host", b"evil.example")]
    sent = _forwarded_headers(upstream_request_head(check(headers), "192.0.2.1", 1))
    assert sent[b"x-forwarded-proto"] == [b"http"]
    assert sent[b"x-forwarded-host"] == [b"example.com"]


def test_existing_forwarded_from_a_trusted_client_is_appended_to() -> None:
    headers = [HOST, (b"Forwarded", b"for=198.51.100.2;proto=https")]
    policy = ForwardingPolicy(["192.0.2.0/24"], proto="https")
    out = upstream_request_head(check(headers), "192.0.2.1", 1, policy=policy, trusted=True)
    assert _forwarded_headers(out)[b"forwarded"] == [
        b"for=198.51.100.2;proto=https, for=192.0.2.1;host=example.com;proto=https"
    ]


def test_ipv6_client_is_bracketed_and_quoted_in_forwarded_only() -> None:
    out = upstream_request_head(check([HOST]), "2001:db8::1", 1)
    sent = _forwarded_headers(out)
    assert sent[b"forwarded"] == [b'for="[2001:db8::1]";host=example.com;proto=http']
    assert sent[b"x-forwarded-for"] == [b"2001:db8::1"]


@pytest.mark.parametrize(
    ("host", "shown"),
    [(b"example.com:8080", b'"example.com:8080"'), (b"[2001:db8::1]:443", b'"[2001:db8::1]:443"')],
)
def test_forwarded_host_is_quoted_when_not_a_token(host: bytes, shown: bytes) -> None:
    out = upstream_request_head(check([(b"Host", host)]), "192.0.2.1", 1)
    assert _forwarded_headers(out)[b"forwarded"] == [
        b"for=192.0.2.1;host=" + shown + b";proto=http"
    ]


def test_request_without_host_sends_no_x_forwarded_host() -> None:
    out = upstream_request_head(check([], version="1.0"), "192.0.2.1", 1)
    sent = _forwarded_headers(out)
    assert b"x-forwarded-host" not in sent
    assert sent[b"forwarded"] == [b"for=192.0.2.1;proto=http"]


def test_http10_request_goes_upstream_as_http11_without_connection_header() -> None:
    head = check([HOST, (b"Connection", b"keep-alive")], version="1.0")
    method, target, version, headers = parse_request(upstream_request_head(head, "192.0.2.1", 1))
    assert (method, target, version) == (b"GET", b"/", "1.1")
    assert all(name.lower() != b"connection" for name, _ in headers)


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ([(b"Content-Length", b"0012")], b"Content-Length: 12\r\n"),
        ([(b"Transfer-Encoding", b"CHUNKED")], b"Transfer-Encoding: chunked\r\n"),
    ],
)
def test_upstream_framing_is_regenerated(framing: Headers, expected: bytes) -> None:
    out = upstream_request_head(check([HOST, *framing], b"POST"), "192.0.2.1", 1)
    assert out.endswith(expected + b"\r\n")
    assert out.lower().count(b"content-length") + out.lower().count(b"transfer-encoding") == 1


def test_values_mentioning_forwarded_are_left_alone() -> None:
    headers = [HOST, (b"X-Note", b"Forwarded: for=1.2.3.4"), (b"Referer", b"/x-forwarded-for")]
    out = upstream_request_head(check(headers), "192.0.2.1", 1)
    assert b"X-Note: Forwarded: for=1.2.3.4\r\nReferer: /x-forwarded-for\r\n" in out


def test_client_port_is_not_disclosed() -> None:
    out = upstream_request_head(check([HOST]), "192.0.2.1", 54321)
    assert b"54321" not in out


def _forwarded_headers(raw: bytes) -> dict[bytes, list[bytes]]:
    """The proxy-set headers of a request, as a server parses them."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in parse_request(raw)[3]:
        if b"forwarded" in name.lower():
            found.setdefault(name.lower(), []).append(value)
    return found


def test_check_records_whether_forwarding_headers_need_merging() -> None:
    assert check([HOST, (b"Accept", b"*/*")]).has_forwarding_headers is False
    assert check([HOST, (b"x-forwarded-host", b"a")]).has_forwarding_headers is True


def test_hand_built_head_merges_forwarding_headers_by_default() -> None:
    head = RequestHead(
        method=b"GET",
        target=b"/",
        version="1.1",
        host=b"example.com",
        headers=[HOST, (b"X-Forwarded-For", b"203.0.113.5")],
        content_length=None,
        chunked=False,
        keep_alive=True,
        idempotent=True,
        expects_continue=False,
    )
    sent = _forwarded_headers(upstream_request_head(head, "192.0.2.1", 1))
    assert sent[b"x-forwarded-for"] == [b"203.0.113.5, 192.0.2.1"]


def test_names_and_hosts_stay_checked_after_many_distinct_values() -> None:
    # More distinct names and hosts than the internal memos hold: all still validated.
    for batch in range(60):
        headers = [(b"X-Name-%d-%d" % (batch, i), b"v") for i in range(90)]
        assert len(check([(b"Host", b"h%d.example" % batch), *headers]).headers) == 91
    for batch in range(5000):
        check([(b"Host", b"host-%d.example" % batch)])
    assert "header name" in refusal([HOST, (b"X Bad", b"v")]).reason
    assert refusal([(b"Host", b"bad host")]).reason.startswith("invalid Host header")
    assert check([(b"Host", b"late.example:81 ")]).host == b"late.example:81"


def test_long_header_names_count_toward_the_size_limit_every_time() -> None:
    long_name = b"X-" + b"n" * 198
    headers = [HOST, (long_name, b"v")]  # 19 + (200 + 1 + 4) = 224 bytes
    limits = HeadLimits(max_header_bytes=223)
    for _ in range(2):  # the second time the name is no longer new
        error = refusal(headers, limits=limits)
        assert (error.status, error.reason) == (
            431,
            "request header section is 224 bytes, limit 223",
        )
    assert check(headers, limits=HeadLimits(max_header_bytes=224)).headers == headers


def test_same_header_names_with_other_values_are_judged_on_their_values() -> None:
    # The names repeat, so the second and third heads reuse what the first one taught
    # the policy about these names; their values must still decide.
    names = [b"Host", b"Connection", b"Content-Length"]
    first = check(list(zip(names, [b"a.example", b"keep-alive", b"5"], strict=True)))
    second = check(list(zip(names, [b"b.example", b"close", b"7"], strict=True)))
    assert (first.host, first.keep_alive, first.content_length) == (b"a.example", True, 5)
    assert (second.host, second.keep_alive, second.content_length) == (b"b.example", False, 7)
    error = refusal(list(zip(names, [b"c.example", b"close", b"7x"], strict=True)))
    assert error.reason == "malformed Content-Length '7x' in the request (digits only)"


def test_a_refused_header_name_is_refused_every_time() -> None:
    for _ in range(3):
        assert refusal([HOST, (b"Content_Length", b"5")]).status == 400
        assert "invalid byte" in refusal([HOST, (b"X@Bad", b"v")]).reason


def test_forwarding_headers_follow_each_client_and_host() -> None:
    for ip, host in [("192.0.2.1", b"a.example"), ("192.0.2.2", b"a.example")] * 2:
        sent = _forwarded_headers(upstream_request_head(check([(b"Host", host)]), ip, 1))
        assert sent[b"x-forwarded-for"] == [ip.encode()]
        assert sent[b"forwarded"] == [b"for=%s;host=%s;proto=http" % (ip.encode(), host)]
    sent = _forwarded_headers(upstream_request_head(check([(b"Host", b"b.example")]), "::1", 1))
    assert sent[b"forwarded"] == [b'for="[::1]";host=b.example;proto=http']


# -- trailers ------------------------------------------------------------------------------


def test_trailers_that_pass_are_forwarded_as_received() -> None:
    section = b"X-Checksum: sha256=abc\r\ngrpc-status:0\r\nX-Empty: \r\n\r\n"
    lines = check_trailers(section, LIMITS, "request")
    assert lines == b"X-Checksum: sha256=abc\r\ngrpc-status: 0\r\nX-Empty: \r\n"


def test_hop_by_hop_and_forwarding_trailers_are_removed() -> None:
    section = (
        b"Connection: close\r\nX-A: 1\r\nTE: trailers\r\nForwarded: for=6.6.6.6\r\n"
        b"x-forwarded-proto: https\r\nKeep-Alive: 5\r\nTrailer: X-A\r\n\r\n"
    )
    assert check_trailers(section, LIMITS, "request") == b"X-A: 1\r\n"
    assert check_trailers(b"Upgrade: h2c\r\n\r\n", LIMITS, "response") == b""


@pytest.mark.parametrize(
    "name", [b"Content-Length", b"transfer-encoding", b"HOST", b"Content_Length"]
)
def test_framing_and_routing_trailers_are_refused(name: bytes) -> None:
    section = b"%s: 5\r\n\r\n" % name
    with pytest.raises(ClientProtocolError) as refused:
        check_trailers(section, LIMITS, "request")
    assert refused.value.status == 400
    assert "is not allowed in the request trailers" in refused.value.reason
    with pytest.raises(UpstreamProtocolError, match="not allowed in the response trailers"):
        check_trailers(section, LIMITS, "response")


def test_trailers_are_held_to_the_head_limits_and_field_bytes() -> None:
    limits = HeadLimits(max_header_bytes=64, max_headers=2)
    with pytest.raises(ClientProtocolError) as refused:
        check_trailers(b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits, "request")
    assert (refused.value.status, refused.value.reason) == (
        431,
        "too many request trailer fields: 3, limit 2",
    )
    with pytest.raises(ClientProtocolError) as refused:
        check_trailers(b"A: " + b"a" * 80 + b"\r\n\r\n", limits, "request")
    assert refused.value.status == 431
    with pytest.raises(ClientProtocolError) as refused:
        check_trailers(b"A: a\x7fb\r\n\r\n", LIMITS, "request")
    assert refused.value.status == 400 and "request trailer" in refused.value.reason
    with pytest.raises(ClientProtocolError) as refused:
        check_trailers(b"A(b): 1\r\n\r\n", LIMITS, "request")
    assert refused.value.status == 400 and "header name" in refused.value.reason


@pytest.mark.parametrize(
    ("fields", "ignorable"),
    [
        (b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n", True),
        (b"Upgrade: H2C\r\nContent-Length: 0\r\n", True),
        (b"Upgrade: websocket\r\n", False),
        (b"Upgrade: h2c, websocket\r\n", False),
        (b"Upgrade: h2c\r\nContent-Length: 3\r\n", False),
        (b"Upgrade: h2c\r\nTransfer-Encoding: chunked\r\n", False),
        (b"Connection: Upgrade\r\n", False),
    ],
)
def test_only_a_bodiless_offer_of_h2c_alone_may_be_ignored(fields: bytes, ignorable: bool) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n"
    assert ignorable_upgrade(raw) is ignorable
