"""The per-connection memos give exactly what the policy gives, for any run of heads.

A connection's RequestMemo/ResponseMemo takes heads as raw bytes and reuses the previous
verdict when a head repeats. These tests feed random runs of heads (repeats,
near-repeats, other targets, absolute-form targets, invalid heads) through one memo and
through the plain policy functions, and require the same result or the same refusal
every time.
"""

from __future__ import annotations

from dataclasses import astuple

from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.errors import ClientProtocolError, UpstreamProtocolError
from bascule.proxy.http_policy import (
    HeadLimits,
    RequestMemo,
    ResponseMemo,
    check_request_head,
    check_response_head,
    client_response_head,
    upstream_request_head,
)

LIMITS = HeadLimits(max_request_line=64)
Headers = list[tuple[bytes, bytes]]

REQUEST_HEADERS: list[Headers] = [
    [(b"Host", b"a.example")],
    [(b"Host", b"b.example")],
    [(b"Host", b"a.example"), (b"Connection", b"close")],
    [(b"Host", b"a.example"), (b"Content-Length", b"5")],
    [(b"Host", b"a.example"), (b"X-Forwarded-For", b"203.0.113.9")],
    [(b"Host", b"a.example"), (b"Transfer-Encoding", b"chunked")],
    [(b"Host", b"a.example"), (b"Content-Length", b"x")],  # refused
    [(b"Host", b"a.example"), (b"Host", b"b.example")],  # refused
    [],  # refused on 1.1, allowed on 1.0
    [(b"Host", b"a.example"), (b"Accept", b"*/*"), (b"X-Empty", b""), (b"X-T", b"v \t")],
    [(b"Host", b"a.example"), (b"Connection", b"keep-alive"), (b"Accept", b"*/*")],
]
# What separates a name from its value on the wire: the proxy writes ": ", clients may
# send any optional whitespace (llhttp reports the value without the leading part).
SEPARATORS = [b": ", b":", b":  ", b":\t"]
TARGETS = [
    b"/",
    b"/a",
    b"/b?q=1",
    b"http://c.example/x",
    b"*",
    b"/" + b"x" * 70,  # over the 64-byte limit
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes, str, Headers, list[bytes]]:
    method = draw(st.sampled_from([b"GET", b"POST", b"OPTIONS"]))
    target = draw(st.sampled_from(TARGETS))
    version = draw(st.sampled_from(["1.1", "1.0"]))
    headers = list(draw(st.sampled_from(REQUEST_HEADERS)))  # a new list, as per message
    # Mostly the usual ": ", so that runs of heads equal but for the target happen.
    usual = st.sampled_from([b": ", b": ", b": ", *SEPARATORS])
    separators = draw(st.lists(usual, min_size=len(headers), max_size=len(headers)))
    return method, target, version, headers, separators


def plain_request(method: bytes, target: bytes, version: str, headers: Headers) -> object:
    try:
        head = check_request_head(method, target, version, headers, LIMITS)
    except ClientProtocolError as refused:
        return ("refused", refused.status, refused.reason)
    return astuple(head), upstream_request_head(head, "192.0.2.7", 4000)


def raw_head(start_line: bytes, headers: Headers, separators: list[bytes] | None = None) -> bytes:
    seps = separators or [b": "] * len(headers)
    lines = b"".join(b"%s%s%s\r\n" % (n, sep, v) for (n, v), sep in zip(headers, seps, strict=True))
    return start_line + b"\r\n" + lines + b"\r\n"


def raw_request(
    method: bytes, target: bytes, version: str, headers: Headers, seps: list[bytes] | None = None
) -> bytes:
    return raw_head(b"%s %s HTTP/%s" % (method, target, version.encode()), headers, seps)


def memo_request(
    memo: RequestMemo,
    method: bytes,
    target: bytes,
    version: str,
    h: Headers,
    seps: list[bytes] | None = None,
) -> object:
    try:
        head, wire = memo.check(raw_request(method, target, version, h, seps), LIMITS)
    except ClientProtocolError as refused:
        return ("refused", refused.status, refused.reason)
    return astuple(head), wire


@settings(max_examples=300, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=12))
def test_request_memo_gives_what_the_policy_gives(
    run: list[tuple[bytes, bytes, str, Headers, list[bytes]]],
) -> None:
    memo = RequestMemo("192.0.2.7", 4000)
    for method, target, version, headers, seps in run:
        expected = plain_request(method, target, version, headers)
        assert memo_request(memo, method, target, version, list(headers), seps) == expected


def test_absolute_form_authority_is_not_reused_for_the_next_request() -> None:
    memo = RequestMemo("192.0.2.7", 4000)
    headers: Headers = [(b"Host", b"a.example")]
    first, _ = memo.check(raw_request(b"GET", b"http://c.example/x", "1.1", headers), LIMITS)
    second, wire = memo.check(raw_request(b"GET", b"/x", "1.1", headers), LIMITS)
    assert (first.host, second.host) == (b"c.example", b"a.example")
    assert b"Host: a.example\r\n" in wire


RESPONSE_HEADERS: list[Headers] = [
    [(b"Content-Length", b"6")],
    [(b"Content-Length", b"7")],
    [(b"Content-Length", b"6"), (b"Connection", b"close")],
    [(b"Transfer-Encoding", b"chunked")],
    [(b"Content-Length", b"6"), (b"Content-Length", b"6")],  # refused
    [],
]


@st.composite
def responses(draw: st.DrawFn) -> tuple[int, bytes, str, Headers, str, bool, bool]:
    status = draw(st.sampled_from([200, 204, 304, 404, 100, 700]))
    reason = draw(st.sampled_from([b"OK", b"Not Found", b"bad\x01"]))
    version = draw(st.sampled_from(["1.1", "1.0"]))
    headers = list(draw(st.sampled_from(RESPONSE_HEADERS)))
    framing = draw(st.sampled_from(["length", "chunked", "none", "close"]))
    keep_alive = framing != "close" and draw(st.booleans())
    http10 = framing != "chunked" and draw(st.booleans())
    return status, reason, version, headers, framing, keep_alive, http10


def client_head_or_error(make: object, *args: object) -> object:
    try:
        return make(*args)  # type: ignore[operator]
    except ValueError as wrong:
        return ("ValueError", str(wrong))


@settings(max_examples=300, deadline=None)
@given(st.lists(responses(), min_size=1, max_size=12))
def test_response_memo_gives_what_the_policy_gives(
    run: list[tuple[int, bytes, str, Headers, str, bool, bool]],
) -> None:
    memo = ResponseMemo()
    for status, reason, version, headers, framing, keep_alive, http10 in run:
        raw = raw_head(b"HTTP/%s %d %s" % (version.encode(), status, reason), headers)
        try:
            expected = check_response_head(status, reason, version, headers, LIMITS)
        except UpstreamProtocolError as refused:
            try:
                memo.check(raw, status, LIMITS)
            except UpstreamProtocolError as also:
                assert also.reason == refused.reason
                continue
            raise AssertionError("the memo let through a refused response") from None
        got = memo.check(raw, status, LIMITS)
        assert astuple(got) == astuple(expected)
        args = (framing, keep_alive, http10)
        assert client_head_or_error(memo.client_head, got, *args) == client_head_or_error(
            client_response_head, expected, *args
        )
