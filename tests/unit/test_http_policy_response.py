"""Response side of the HTTP policy, and the proxy's own error responses."""

from __future__ import annotations

import httptools
import pytest

from bascule.errors import UpstreamProtocolError
from bascule.proxy.http_policy import (
    Framing,
    HeadLimits,
    ResponseHead,
    check_response_head,
    client_response_head,
    error_response,
)

LIMITS = HeadLimits()
Headers = list[tuple[bytes, bytes]]
LENGTH_5 = (b"Content-Length", b"5")


def check(
    headers: Headers,
    status: int = 200,
    version: str = "1.1",
    reason: bytes = b"OK",
    limits: HeadLimits = LIMITS,
) -> ResponseHead:
    return check_response_head(status, reason, version, headers, limits)


def failure(
    headers: Headers,
    status: int = 200,
    version: str = "1.1",
    reason: bytes = b"OK",
    limits: HeadLimits = LIMITS,
) -> UpstreamProtocolError:
    with pytest.raises(UpstreamProtocolError) as failed:
        check(headers, status, version, reason, limits)
    assert failed.value.status == 502
    return failed.value


class ParsedResponse:
    """A response as a client parses it (httptools)."""

    def __init__(self, raw: bytes) -> None:
        self.headers: Headers = []
        self.body = b""
        self.complete = False
        self.reason = b""
        parser = httptools.HttpResponseParser(self)
        parser.feed_data(raw)
        self.status = parser.get_status_code()
        self.version = parser.get_http_version()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


# -- check_response_head ------------------------------------------------------------------


@pytest.mark.parametrize("status", [0, 99, 600, 999])
def test_status_outside_100_599_is_refused(status: int) -> None:
    assert str(status) in failure([LENGTH_5], status=status).reason


@pytest.mark.parametrize("version", ["2.0", "0.9", ""])
def test_unsupported_response_version_is_refused(version: str) -> None:
    assert "HTTP version" in failure([LENGTH_5], version=version).reason


def test_control_byte_in_reason_phrase_is_refused() -> None:
    assert "reason phrase" in failure([LENGTH_5], reason=b"OK\r\nX-Injected: 1").reason


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ([LENGTH_5, (b"Transfer-Encoding", b"chunked")], "both Transfer-Encoding and Content-"),
        ([LENGTH_5, LENGTH_5], "duplicate Content-Length"),
        ([(b"Content-Length", b"5, 5")], "malformed Content-Length"),
        ([(b"Content-Length", b"-1")], "malformed Content-Length"),
        ([(b"Transfer-Encoding", b"gzip")], "only a single 'chunked'"),
        ([(b"Transfer-Encoding", b"gzip, chunked")], "only a single 'chunked'"),
        ([(b"Transfer-Encoding", b"chunked")] * 2, "duplicate Transfer-Encoding"),
        ([(b"X-Bad", b"a\x00b")], "control byte"),
        ([(b"X Bad", b"v")], "header name"),
    ],
)
def test_unsafe_response_framing_and_bytes_are_refused(headers: Headers, fragment: str) -> None:
    assert fragment in failure(headers).reason


def test_transfer_encoding_in_http10_response_is_refused() -> None:
    assert "HTTP/1.0" in failure([(b"Transfer-Encoding", b"chunked")], version="1.0").reason


def test_too_many_and_too_large_response_headers_are_refused() -> None:
    headers = [(b"X-%d" % i, b"v") for i in range(3)]
    assert "too many response headers" in failure(headers, limits=HeadLimits(max_headers=2)).reason
    error = failure(headers, limits=HeadLimits(max_header_bytes=10))
    assert "response header section is 24 bytes" in error.reason


def test_response_hop_by_hop_and_connection_named_headers_are_removed() -> None:
    headers = [
        (b"Server", b"nginx"),
        (b"Connection", b"keep-alive, X-Internal"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-Internal", b"debug"),
        (b"Upgrade", b"h2c"),
        (b"Trailer", b"X-Sum"),
        (b"Proxy-Connection", b"keep-alive"),
        LENGTH_5,
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    head = check(headers)
    assert head.headers == [
        (b"Server", b"nginx"),
        (b"Trailer", b"X-Sum"),  # end to end: the trailers it announces pass too
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert head.content_length == 5


@pytest.mark.parametrize(
    ("version", "headers", "keep_alive"),
    [
        ("1.1", [LENGTH_5], True),
        ("1.1", [(b"Transfer-Encoding", b"chunked")], True),
        ("1.1", [LENGTH_5, (b"Connection", b"close")], False),
        ("1.1", [LENGTH_5, (b"Connection", b"Keep-Alive, Close")], False),
        ("1.1", [], False),  # body delimited by close: the server closes
        ("1.0", [LENGTH_5], False),
        ("1.0", [LENGTH_5, (b"Connection", b"keep-alive")], True),
        ("1.0", [(b"Connection", b"keep-alive")], False),
    ],
)
def test_server_keep_alive(version: str, headers: Headers, keep_alive: bool) -> None:
    assert check(headers, version=version).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("status", "no_body"), [(100, True), (103, True), (200, False), (204, True), (304, True)]
)
def test_statuses_without_body(status: int, no_body: bool) -> None:
    head = check([LENGTH_5], status=status)
    assert head.no_body is no_body
    assert head.keep_alive is True


@pytest.mark.parametrize("status", [100, 204])
def test_framing_headers_on_1xx_and_204_are_not_relayed(status: int) -> None:
    head = check([LENGTH_5], status=status)
    assert (head.content_length, head.chunked) == (None, False)
    assert b"Content-Length" not in client_response_head(head, "none", True)


def test_content_length_of_304_is_kept_for_none_framing() -> None:
    head = check([(b"ETag", b'"x"'), (b"Content-Length", b"1234")], status=304, reason=b"")
    raw = client_response_head(head, "none", True)
    assert raw == b'HTTP/1.1 304 \r\nETag: "x"\r\nContent-Length: 1234\r\n\r\n'


# -- client_response_head -----------------------------------------------------------------


def test_length_framing_exact_bytes() -> None:
    head = check([(b"Server", b"nginx"), (b"Content-Length", b"5")], version="1.0")
    assert client_response_head(head, "length", True, http10_client=True) == (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("framing", "keep_alive", "http10", "length", "chunked", "connection"),
    [
        ("length", True, False, [b"5"], [], []),
        ("length", False, False, [b"5"], [], [b"close"]),
        ("length", True, True, [b"5"], [], [b"keep-alive"]),
        ("chunked", True, False, [], [b"chunked"], []),
        ("close", False, False, [], [], [b"close"]),
        ("close", False, True, [], [], [b"close"]),
        ("none", True, False, [b"5"], [], []),
    ],
)
def test_client_framing_and_connection_headers(
    framing: Framing,
    keep_alive: bool,
    http10: bool,
    length: list[bytes],
    chunked: list[bytes],
    connection: list[bytes],
) -> None:
    head = check([(b"Content-Type", b"text/plain"), LENGTH_5])
    parsed = ParsedResponse(client_response_head(head, framing, keep_alive, http10))
    assert (parsed.status, parsed.version, parsed.reason) == (200, "1.1", b"OK")
    assert parsed.header(b"Content-Length") == length
    assert parsed.header(b"Transfer-Encoding") == chunked
    assert parsed.header(b"Connection") == connection
    assert parsed.header(b"Content-Type") == [b"text/plain"]


def test_chunked_response_for_client_removes_server_length() -> None:
    head = check([(b"Transfer-Encoding", b"chunked")])
    raw = client_response_head(head, "chunked", True)
    assert raw == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("framing", "keep_alive", "http10", "message"),
    [
        ("close", True, False, "keep_alive must be False"),
        ("chunked", True, True, "HTTP/1.0 client"),
        ("length", True, False, "needs a response with a Content-Length"),
    ],
)
def test_contradictory_framing_requests_are_programming_errors(
    framing: Framing, keep_alive: bool, http10: bool, message: str
) -> None:
    head = check([(b"Transfer-Encoding", b"chunked")])
    with pytest.raises(ValueError, match=message):
        client_response_head(head, framing, keep_alive, http10)


# -- error_response -----------------------------------------------------------------------


def test_error_response_is_a_complete_closing_plain_text_response() -> None:
    raw = error_response(503, "no server available for backend app")
    parsed = ParsedResponse(raw)
    assert parsed.complete
    assert (parsed.status, parsed.reason) == (503, b"Service Unavailable")
    assert parsed.body == b"503 Service Unavailable: no server available for backend app\n"
    assert parsed.header(b"Content-Length") == [str(len(parsed.body)).encode()]
    assert parsed.header(b"Connection") == [b"close"]
    assert parsed.header(b"Cache-Control") == [b"no-cache"]
    assert parsed.header(b"Content-Type") == [b"text/plain; charset=utf-8"]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (400, b"Bad Request"),
        (414, b"URI Too Long"),
        (431, b"Request Header Fields Too Large"),
        (501, b"Not Implemented"),
        (502, b"Bad Gateway"),
        (504, b"Gateway Timeout"),
        (505, b"HTTP Version Not Supported"),
        (599, b"Error"),
    ],
)
def test_error_response_reason_phrases(status: int, phrase: bytes) -> None:
    parsed = ParsedResponse(error_response(status, "detail"))
    assert (parsed.status, parsed.reason) == (status, phrase)


def test_error_detail_cannot_break_the_body_line() -> None:
    parsed = ParsedResponse(error_response(400, "bad\r\nX-Injected: 1\x00"))
    assert parsed.body == b"400 Bad Request: bad??X-Injected: 1?\n"


def test_long_error_detail_is_truncated() -> None:
    body = ParsedResponse(error_response(400, "x" * 10_000)).body
    assert len(body) < 400
    assert body.endswith(b"...\n")


def test_error_response_without_detail() -> None:
    assert ParsedResponse(error_response(504, "")).body == b"504 Gateway Timeout\n"


def test_error_response_refuses_invalid_status() -> None:
    with pytest.raises(ValueError, match="outside 100-599"):
        error_response(99, "x")
