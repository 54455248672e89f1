"""HeadReader takes exactly the heads llhttp parsed, wherever the reads are cut.

A differential test: the same byte stream, cut into random reads, goes through httptools
twice. Once with its per-piece callbacks (URL, each header, the version: what the proxy
used before), once the way the proxy reads heads now: HeadReader takes each head whole
and `request_line` / `status_line` / `fields` split it. Both must see the same heads.
"""

from __future__ import annotations

import itertools

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.errors import ClientProtocolError
from bascule.proxy.heads import HeadReader, fields, request_line, status_code, status_line

NAMES = [b"Host", b"Accept", b"X-Empty", b"user-agent", b"X-A_b", b"Cookie"]
VALUES = [b"a", b"", b"  lead", b"trail \t", b" both  ", b"x:y:z", b"\t", b"caf\xc3\xa9"]


class Reference:
    """httptools with its per-piece callbacks: (method or status, URL or reason, version,
    headers) per head."""

    def __init__(self, response: bool = False) -> None:
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser = (
            httptools.HttpResponseParser(self) if response else httptools.HttpRequestParser(self)
        )
        self.heads: list[tuple[object, bytes, str, list[tuple[bytes, bytes]]]] = []
        self.trailers: list[list[tuple[bytes, bytes]]] = []  # per message
        self.piece = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_message_begin(self) -> None:
        self.piece, self.headers = b"", []

    def on_message_complete(self) -> None:
        # httptools reports chunked trailers through on_header, after the head's fields.
        self.trailers.append(self.headers[len(self.heads[-1][3]) :])

    def on_url(self, url: bytes) -> None:
        self.piece += url

    def on_status(self, reason: bytes) -> None:
        self.piece += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        first: object = (
            parser.get_status_code()
            if isinstance(parser, httptools.HttpResponseParser)
            else parser.get_method()
        )
        # A copy: httptools reports chunked trailers through on_header too.
        self.heads.append((first, self.piece, parser.get_http_version(), list(self.headers)))


class Subject:
    """httptools with the proxy's callbacks: heads taken whole by a HeadReader."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.reader = HeadReader()
        self.heads: list[object] = []
        self.trailers: list[list[tuple[bytes, bytes]]] = []
        self.lost = False

    def feed(self, data: bytes) -> None:
        self.reader.read(data)
        self.parser.feed_data(data)
        self.reader.end_of_read()

    def on_message_begin(self) -> None:
        self.reader.message_begun()

    def on_headers_complete(self) -> None:
        if self.reader.lost:
            self.lost = True
            return
        raw = self.reader.take()
        method, target, version, start = request_line(raw)
        headers = fields(raw, start, "request")
        self.heads.append((method, target, version, headers))
        length = body_length(headers)
        self.reader.skip(length, chunked=length is None)

    def on_message_complete(self) -> None:
        self.reader.message_done()
        section = self.reader.trailers
        self.trailers.append(fields(section, 0, "request") if section else [])


def body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"transfer-encoding":
            return None
        if name.lower() == b"content-length":
            return int(value)
    return 0


@st.composite
def request(draw: st.DrawFn) -> tuple[bytes, bool]:
    """One valid request as bytes, and whether its body is chunked."""
    lead = draw(st.sampled_from([b"", b"", b"\r\n", b"\n", b"\r\n\r\n"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"DELETE"]))
    target = draw(st.sampled_from([b"/", b"/a?b=c", b"*", b"http://h/x", b"/" + b"p" * 300]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    gap = draw(st.sampled_from([b" ", b" ", b"  "]))
    pairs = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=6))
    lines = [b"%s:%s\r\n" % pair for pair in pairs]
    if version == b"HTTP/1.0":
        lines.append(b"Connection: keep-alive\r\n")  # else llhttp takes no next request
    body_kind = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if body_kind == "length":
        content = draw(st.binary(max_size=40))
        lines.append(b"Content-Length: %d\r\n" % len(content))
        body = content
    elif body_kind == "chunked" and version == b"HTTP/1.1":
        lines.append(b"Transfer-Encoding: chunked\r\n")
        chunks = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3))
        ext = draw(st.sampled_from([b"", b";x=1", b';a="b;c\\"";d']))
        size = draw(st.sampled_from([b"%x", b"%X", b"00%x"]))
        body = b"".join(size % len(c) + b"%s\r\n%s\r\n" % (ext, c) for c in chunks)
        body += draw(st.sampled_from([b"0", b"000"])) + ext + b"\r\n"
        trailers = [b"Trailer-A: 1\r\n", b"X-B:  v \r\nx-c:\r\n", b"X-D:" + b"d" * 300 + b"\r\n"]
        body += draw(st.sampled_from([b"", *trailers])) + b"\r\n"
    chunked = body_kind == "chunked" and version == b"HTTP/1.1"
    head = lead + method + gap + target + b" " + version + b"\r\n" + b"".join(lines) + b"\r\n"
    return head + body, chunked


def cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=400, deadline=None)
@given(st.lists(request(), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
def test_heads_taken_whole_equal_the_heads_llhttp_reported(
    messages: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(message for message, _ in messages)
    reference, subject = Reference(), Subject()
    for piece in cut(stream, cuts):
        reference.parser.feed_data(piece)
        subject.feed(piece)
    assert len(reference.heads) == len(messages)
    assert not subject.lost
    assert subject.heads == reference.heads
    assert subject.trailers == reference.trailers


def test_a_request_in_the_same_read_as_the_end_of_a_chunked_body_is_found() -> None:
    chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
    nxt = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    together = Subject()
    together.feed(chunked + b"T: 1\r\n\r\n" + nxt)
    assert not together.lost and [h[1] for h in together.heads] == [b"/", b"/next"]
    assert together.trailers == [[(b"T", b"1")], []]
    apart = Subject()
    for piece in (chunked, b"\r", b"\n", nxt):
        apart.feed(piece)
    assert not apart.lost and [h[1] for h in apart.heads] == [b"/", b"/next"]
    assert apart.trailers == [[], []]


def test_a_chunked_body_whose_end_the_scan_disagrees_on_is_an_internal_error() -> None:
    reader = HeadReader()
    reader.read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    reader.message_begun()
    reader.take()
    reader.skip(None, chunked=True)
    with pytest.raises(RuntimeError, match="chunked body"):
        reader.message_done()  # as if llhttp had said the message was complete here


def test_repeated_heads_in_one_read_and_across_reads_are_each_taken_exactly() -> None:
    # A head equal to the previous one is recognised without searching for its end.
    same = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    longer = b"GET /a HTTP/1.1\r\nHost: a\r\nX-More: 1\r\n\r\n"
    subject = Subject()
    subject.feed(same)
    subject.feed(same + same + longer)
    subject.feed(longer)
    hosts = [(b"Host", b"a")]
    assert [h[3] for h in subject.heads] == [hosts] * 3 + [[*hosts, (b"X-More", b"1")]] * 2


def test_a_request_line_without_a_version_is_http_0_9_and_a_broken_one_is_refused() -> None:
    assert request_line(b"GET /\r\n\r\n")[:3] == (b"GET", b"/", "0.9")
    assert request_line(b"GET / RTSP/1.0\r\n\r\n")[2] == "RTSP/1.0"
    with pytest.raises(ClientProtocolError):
        request_line(b"GET\r\n\r\n")


class ResponseSubject:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reader = HeadReader()
        self.heads: list[object] = []

    def on_message_begin(self) -> None:
        self.reader.message_begun()

    def on_headers_complete(self) -> None:
        raw = self.reader.take()
        status = status_code(raw)  # the reference asks llhttp
        reason, version, start = status_line(raw)
        self.heads.append((status, reason, version, fields(raw, start, "response")))
        self.reader.skip(0 if status < 200 else None)

    def on_message_complete(self) -> None:
        self.reader.message_done()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"100 Continue", b"103 Early Hints", b"102 "]), max_size=3),
    st.sampled_from([b"200 OK", b"404 Not  Found ", b"299", b"500 ", b"099 x", b"999 y"]),
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5),
    st.lists(st.integers(0, 10**6), max_size=6),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
)
def test_response_heads_after_interim_ones_are_taken_whole(
    interim: list[bytes],
    final: bytes,
    pairs: list[tuple[bytes, bytes]],
    cuts: list[int],
    version: bytes,
) -> None:
    lines = b"".join(b"%s:%s\r\n" % pair for pair in pairs)
    stream = b"".join(b"HTTP/1.1 %s\r\n%s\r\n" % (status, lines) for status in interim)
    stream += b"%s %s\r\n%sContent-Length: 2\r\n\r\nhi" % (version, final, lines)
    reference, subject = Reference(response=True), ResponseSubject()
    for piece in cut(stream, cuts):
        reference.parser.feed_data(piece)
        subject.reader.read(piece)
        subject.parser.feed_data(piece)
        subject.reader.end_of_read()
    assert len(subject.heads) == len(interim) + 1
    assert subject.heads == reference.heads
