"""Property tests: whatever the policy lets through is re-sent exactly and parses strictly."""

from __future__ import annotations

import ipaddress

import httptools
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bascule.errors import ClientProtocolError
from bascule.proxy.http_policy import (
    HeadLimits,
    check_request_head,
    check_response_head,
    client_response_head,
    upstream_request_head,
    with_server_host,
)

Headers = list[tuple[bytes, bytes]]
TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Names with a meaning to the proxy; the round-trip property is about all the others.
RESERVED = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-bascule-loop",
    "content_length",
    "transfer_encoding",
}
VALUE_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))

names = st.text(TCHARS, min_size=1, max_size=24).filter(lambda n: n.lower() not in RESERVED)
# A value as a parser hands it over: no leading whitespace (that is OWS and stripped).
values = (
    st.lists(st.sampled_from(VALUE_BYTES), max_size=40).map(bytes).map(lambda v: v.lstrip(b" \t"))
)
end_to_end = st.lists(st.tuples(names.map(str.encode), values), max_size=12)
hosts = st.from_regex(
    r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6})?(:([0-9]{1,4}|[1-5][0-9]{4}))?\Z"
)
client_ips = st.ip_addresses().map(str)
framings = st.one_of(
    st.none(), st.integers(0, 2**40).map(lambda n: (b"Content-Length", b"%d" % n))
) | st.just((b"Transfer-Encoding", b"chunked"))


def parse_request(raw: bytes) -> Headers:
    headers: Headers = []

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            headers.append((name, value))

    httptools.HttpRequestParser(Sink()).feed_data(raw)
    return headers


@given(
    headers=end_to_end,
    host=hosts,
    framing=framings,
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]),
    client_ip=client_ips,
    proto=st.sampled_from(["http", "https"]),
)
def test_forwarded_request_parses_back_to_the_same_headers_plus_ours(
    headers: Headers,
    host: str,
    framing: tuple[bytes, bytes] | None,
    method: bytes,
    client_ip: str,
    proto: str,
) -> None:
    host_header = (b"Host", host.encode())
    received = [host_header, *headers, *([framing] if framing else [])]
    head = check_request_head(method, b"/p?q=1", "1.1", received, HeadLimits())
    raw = upstream_request_head(head, client_ip, 1234, proto)
    node = f'"[{client_ip}]"' if ipaddress.ip_address(client_ip).version == 6 else client_ip
    quoted_host = host if ":" not in host else f'"{host}"'
    ours = [
        (b"X-Forwarded-For", client_ip.encode()),
        (b"X-Forwarded-Proto", proto.encode()),
        (b"X-Forwarded-Host", host.encode()),
        (b"Forwarded", f"for={node};host={quoted_host};proto={proto}".encode()),
        (b"X-Real-IP", client_ip.encode()),
    ]
    assert parse_request(raw) == [host_header, *headers, *ours, *([framing] if framing else [])]


INTERESTING_NAMES = [
    b"Host",
    b"host",
    b"Content-Length",
    b"CONTENT-LENGTH",
    b"Transfer-Encoding",
    b"transfer-encoding",
    b"Connection",
    b"Keep-Alive",
    b"Upgrade",
    b"X-Forwarded-For",
    b"Forwarded",
    b"Expect",
    b"X-A",
]
INTERESTING_VALUES = [
    b"chunked",
    b"CHUNKED",
    b"gzip, chunked",
    b"0",
    b"10",
    b"10, 10",
    b"close",
    b"keep-alive, X-A, Content-Length",
    b"example.com",
    b"100-continue",
    b"",
]
# Each fine on its own; combinations may still conflict (CL with TE, duplicates).
SENSIBLE_HEADERS = [
    (b"Content-Length", b"10"),
    (b"Transfer-Encoding", b"chunked"),
    (b"transfer-encoding", b"CHUNKED"),
    (b"Connection", b"close"),
    (b"Connection", b"keep-alive, X-A, Content-Length, Host"),
    (b"Keep-Alive", b"timeout=5"),
    (b"Upgrade", b"websocket"),
    (b"X-Forwarded-For", b"203.0.113.1"),
    (b"Forwarded", b"for=203.0.113.1"),
    (b"Expect", b"100-continue"),
    (b"X-A", b"1"),
    (b"x-a", b"2"),
]
sensible_header = st.sampled_from(SENSIBLE_HEADERS)
interesting_header = st.tuples(
    st.sampled_from(INTERESTING_NAMES), st.sampled_from(INTERESTING_VALUES)
)
arbitrary_header = st.tuples(st.binary(max_size=12), st.binary(max_size=20))
# Mostly meaningful headers, so that a good share of requests gets through the policy.
any_headers = st.tuples(
    st.integers(0, 3).map(lambda n: n > 0),  # usually with a Host
    st.lists(
        st.one_of(sensible_header, sensible_header, interesting_header, arbitrary_header),
        max_size=5,
    ),
).map(lambda pair: [(b"Host", b"example.com")] * pair[0] + pair[1])


@settings(max_examples=300)
@given(
    headers=any_headers,
    version=st.sampled_from(["1.0", "1.1"]),
    target=st.sampled_from([b"/", b"/x?y=1", b"*", b"http://Example.com/x", b"/a b", b"x"]),
)
def test_anything_accepted_is_forwarded_with_exactly_the_framing_we_decided(
    headers: Headers, version: str, target: bytes
) -> None:
    try:
        head = check_request_head(b"OPTIONS", target, version, headers, HeadLimits())
    except ClientProtocolError as refused:
        assert refused.status in {400, 414, 431, 501, 505}
        event(f"refused {refused.status}")
        return
    event("accepted")
    wire = upstream_request_head(head, "192.0.2.1", 1)
    if not head.host:  # HTTP/1.0 without Host: the exchange names the server it picked
        wire = with_server_host(wire, b"192.0.2.80:8080")
    received: Headers = parse_request(wire)
    framing = [
        (n.lower(), v)
        for n, v in received
        if n.lower() in {b"content-length", b"transfer-encoding"}
    ]
    if head.content_length is not None:
        assert framing == [(b"content-length", b"%d" % head.content_length)]
    elif head.chunked:
        assert framing == [(b"transfer-encoding", b"chunked")]
    else:
        assert framing == []
    expected_host = head.host or b"192.0.2.80:8080"
    assert [v.rstrip(b" \t") for n, v in received if n.lower() == b"host"] == [expected_host]
    hop_by_hop = {b"connection", b"keep-alive", b"upgrade", b"te"}
    assert not hop_by_hop.intersection(n.lower() for n, _ in received)


@given(
    headers=end_to_end,
    length=st.integers(0, 2**40),
    status=st.integers(200, 599).filter(lambda code: code != 204),
)
def test_relayed_response_keeps_end_to_end_headers(
    headers: Headers, length: int, status: int
) -> None:
    received = [*headers, (b"Content-Length", b"%d" % length)]
    head = check_response_head(status, b"Whatever", "1.1", received, HeadLimits())
    parsed: Headers = []

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            parsed.append((name, value))

    httptools.HttpResponseParser(Sink()).feed_data(client_response_head(head, "length", True))
    assert parsed == received
