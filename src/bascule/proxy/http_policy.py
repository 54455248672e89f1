"""HTTP/1.1 message policy for the L7 proxy: what may pass, and how heads are rebuilt.

This module owns every decision about a message head that the proxy makes once per
request and once per response, and nothing else (no I/O, no clock, no body handling):

* `check_request_head` is the security boundary against request smuggling: it refuses
  anything whose framing two HTTP implementations could read differently, removes
  hop-by-hop headers and says how the connection continues (keep-alive, 100-continue).
* `upstream_request_head` rebuilds the head sent to a server: HTTP/1.1, end-to-end
  headers as received, forwarding headers as its `ForwardingPolicy` says (what a
  client's are worth depends on trust), framing we chose.
* `check_response_head` / `client_response_head` do the same for the server's answer.
* `error_response` builds the small responses the proxy answers by itself.

Framing is always re-derived: we never forward the client's Content-Length or
Transfer-Encoding header bytes, only our own from the parsed values, so a header that one
parser reads and another ignores cannot reach a server.

What httptools 0.9 (llhttp, strict mode) already does, found by feeding it raw requests:

* rejects: bare LF line ends; CTL, space, obs-text or a missing name before ':' in header
  names; whitespace before ':'; obs-fold; CTL (incl. NUL, CR, LF, DEL) in header values;
  Content-Length together with Transfer-Encoding; duplicate Content-Length (even equal
  values); Content-Length with a sign, comma, hex, inner space, empty or over 2**64;
  Transfer-Encoding lists where chunked is not last, a second `chunked`, or a request
  whose final coding is not chunked ("identity", "xchunked"); non-ASCII bytes, TAB and
  DEL in the target; an empty target; unknown or lower-case methods; HTTP/1.2.
* lets through, so we check here: duplicate or missing Host and any bytes in it;
  "Transfer-Encoding: gzip, chunked" and "CHUNKED"; Transfer-Encoding on HTTP/1.0;
  HTTP/0.9 and HTTP/2.0 request lines (0.9 also without a version); trailing OWS in
  values (leading OWS is stripped, trailing is kept: "Content-Length: 5 " arrives as
  b"5 "); underscores in names; any number or size of headers; status codes outside
  100-599 in responses; a response Transfer-Encoding without chunked (read to close).
* CONNECT, and requests with Upgrade, make feed_data raise HttpParserUpgrade *after*
  on_headers_complete, so this module has already ruled on them (CONNECT gets 501; the
  Upgrade header is hop-by-hop and removed, so the upgrade never reaches a server).
* The proxy does not take heads through on_url/on_header: it takes each head's bytes
  whole once llhttp accepted it (proxy/heads.py), and `RequestMemo` / `ResponseMemo`
  split them into what the functions here take.
* llhttp skips CR/LF bytes before a message; accepts runs of spaces between the
  request-line's parts; and accepts an "RTSP/1.0" version, which reaches us as a version
  we refuse (505).
* An exception raised in a callback does not come out of feed_data as itself: httptools
  raises HttpParserCallbackError with the original exception as its __context__.

Speed: this runs once per message, so the hot path avoids per-header Python work. The
names of a message are looked up as one tuple in a memo of "shapes" (`_Shape`: which
headers are copied as is, which are noted, their total name length), so each distinct
sequence of names is checked and sorted once. Values get one byte-class check over all of
them joined, and heads are rebuilt with joins (this module is compiled, see setup.py: its
loops over headers only collect names and values). The module's only state is bounded
memos (shapes, lower-cased names, validated Host values; each ForwardingPolicy keeps its
forwarding header lines); they never change a result, only skip repeated work.
bench/http_policy_speed.py measures it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Literal

from bascule.errors import ClientProtocolError, UpstreamProtocolError
from bascule.proxy.heads import Header, fields, read_fields, request_line, status_line

Framing = Literal["length", "chunked", "close", "none"]

MAX_CONTENT_LENGTH: Final = 2**62
"""Largest Content-Length we accept; bigger values only ever come from attacks or bugs."""

_TCHARS: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text (RFC 9110 5.5, RFC 9112 4).
_FIELD_BYTES: Final = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
# Byte-class tables for translate(): allowed bytes become 0, others 1. One translate over
# all values joined is much cheaper than a check per header; names are checked once per
# distinct name, see _lower_name. Test the result with `1 in classes`, not b"\x01": for a
# bytes needle CPython first tries (and fails) to read it as an int, which costs 5-8x.
_FIELD_CLASS: Final = bytes(0 if b in _FIELD_BYTES else 1 for b in range(256))
_NON_TOKEN_CLASS: Final = bytes(0 if b in _TCHARS else 1 for b in range(256))
# Request-target: anything but SP and CTLs (llhttp narrows this further).
_TARGET_CLASS: Final = bytes(0 if 0x21 <= b != 0x7F else 1 for b in range(256))
# uri-host [":" port]: reg-name (RFC 3986: unreserved, pct-encoded, sub-delims) or an
# IPv4 address (a reg-name too) or a bracketed IPv6 literal, then optional trailing OWS.
# The port may be empty ("host:", RFC 3986 3.2.3; RFC 9110 4.2.3 only says to omit it),
# but a number must be a TCP port (`_port_in_range`).
_HOST: Final = re.compile(
    rb"((?:[A-Za-z0-9\-._~%!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]*))?)[ \t]*"
)
_MAX_PORT: Final = 65535

_PLAIN_METHODS: Final = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"}
)
_IDEMPOTENT_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# RFC 9110 7.6.1. Not `Trailer`: it announces the trailer fields, which pass end to end.
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Connection may name any header as hop-by-hop, but not these: Host must reach the server,
# and framing is decided from the original headers whatever Connection says.
_NEVER_NAMED_AWAY: Final = frozenset({b"host", b"content-length", b"transfer-encoding"})
# CGI-style servers (PHP-FPM, WSGI environ) turn both '-' and '_' into '_', so
# "Content_Length" would collide with the real framing header behind us. llhttp accepts
# '_' in names (it is a tchar), so we refuse these two spellings outright.
_CGI_FRAMING_ALIASES: Final = frozenset({b"content_length", b"transfer_encoding"})
# Headers the proxy regenerates on the way to the server (see ForwardingPolicy).
_PROXY_SET: Final = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
    | {
        # Other claims about the original request that frameworks believe (Spring's
        # ForwardedHeaderFilter, Rails, Django, ...): passed on only from trusted networks.
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-scheme",
        b"x-forwarded-server",
        b"x-forwarded-ssl",
        b"front-end-https",
        b"x-url-scheme",
    }
)
# Each Bascule instance adds one of these with its own id, and refuses (508) a request that
# already carries its id: a request that comes back is in a loop. Never removed, so a loop
# through several instances is found too. A private header, not Via (see ForwardingPolicy).
LOOP_HEADER: Final = b"X-Bascule-Loop"
_LOOP_NAME: Final = b"x-bascule-loop"
# Headers the scan hands to interpretation; everything else is copied straight through.
_REQUEST_NOTED: Final = (
    _HOP_BY_HOP
    | _CGI_FRAMING_ALIASES
    | _PROXY_SET
    | {b"host", b"content-length", b"expect", _LOOP_NAME}
)
_RESPONSE_NOTED: Final = _HOP_BY_HOP | {b"content-length"}
# Noted headers that are end-to-end and so also stay in the forwarded list.
_NOTED_BUT_KEPT: Final = _PROXY_SET | {b"host", b"expect", _LOOP_NAME}
# Trailer fields (RFC 9110 6.5.1: never framing or routing). These would change how a
# server that merges trailers into the header section frames or routes the message:
# refused, like the same smuggling shapes in a head.
_TRAILER_REFUSED: Final = _CGI_FRAMING_ALIASES | {b"content-length", b"transfer-encoding", b"host"}
# Removed from trailers as from heads: hop-by-hop fields, and the forwarding fields the
# proxy itself states in the header section (a client's copy in the trailers is a claim
# that a server merging trailers would take as ours).
_TRAILER_REMOVED: Final = (_HOP_BY_HOP | _PROXY_SET | {b"trailer"}) - _TRAILER_REFUSED
_PROTO_BYTES: Final = {"http": b"http", "https": b"https"}
# One forwarded-pair of a Forwarded element (RFC 7239 4) and the separator after it: ";"
# (same element), "," (next element) or the end. A value this does not read is dropped.
_FORWARDED_PAIR: Final = re.compile(
    rb"[ \t]*(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(\"(?:[^\"\\]|\\.)*\"|[!#$%&'*+.^_`|~0-9A-Za-z-]*))?"
    rb"[ \t]*([;,]|\Z)"
)
_STATUS_LINE_STARTS: Final = {code: b"HTTP/1.1 %d " % code for code in range(100, 600)}
# RFC 9110 renamed these; http.HTTPStatus still has the RFC 2616 phrases.
_PHRASE_OVERRIDES: Final = {
    413: "Content Too Large",
    414: "URI Too Long",
    422: "Unprocessable Content",
}
_ERROR_DETAIL_LIMIT: Final = 300

# Memos for values that repeat on nearly every request: valid header name -> lower-cased
# name, raw Host value -> validated host. Each distinct value is checked once. A memo
# stops growing at the limit, so random values from an attacker only cost the slow path.
_MEMO_LIMIT: Final = 4096
_MEMO_NAME_MAX: Final = 64  # longer names are checked every time (and counted exactly)
_MEMO_HOST_MAX: Final = 300  # a DNS name is at most 253 bytes: longer Host values are not kept
_lowered_names: Final[dict[bytes, bytes]] = {}
_valid_hosts: Final[dict[bytes, bytes]] = {}
# Header-name sequences already sorted, one memo per side (see _Shape). Only sequences
# whose names add up to at most _SHAPE_MAX_NAME_BYTES are kept, bounding its memory.
_SHAPE_MAX_NAME_BYTES: Final = 2048
_request_shapes: Final[dict[tuple[bytes, ...], _Shape]] = {}
_response_shapes: Final[dict[tuple[bytes, ...], _Shape]] = {}


@dataclass(frozen=True)
class HeadLimits:
    """Size limits for one message head (nginx/HAProxy-like defaults), and for a request
    body: `max_request_body` bytes, 0 for no limit (checked here for a Content-Length; the
    proxy counts a chunked body as it arrives)."""

    max_header_bytes: int = 32768
    max_headers: int = 100
    max_request_line: int = 8192
    max_request_body: int = 0


# init=False and a written-out __init__: the dataclass-generated one stays interpreted
# when the module is compiled, and a head is built for every request.
@dataclass(init=False)
class RequestHead:
    """A request head that passed the policy, as the proxy routes and forwards it.

    `target` is origin-form ("/path?query") or "*": an absolute-form target
    ("http://host/path") is reduced to its path and its authority becomes the Host, as
    RFC 9112 3.2.3 requires of a proxy. `headers` holds the end-to-end headers in arrival
    order and original case, with exactly one Host among them, except for an HTTP/1.0
    request without one: its `host` is empty and the proxy adds the server's address when
    it has picked one (`with_server_host`). Content-Length and Transfer-Encoding are not
    in it (see `content_length` / `chunked`). `host` is the Host value without trailing
    whitespace, for routing.
    """

    method: bytes
    target: bytes
    version: str
    host: bytes
    headers: list[Header]
    content_length: int | None
    chunked: bool
    keep_alive: bool
    idempotent: bool
    expects_continue: bool
    # False only when check_request_head saw no X-Forwarded-* or Forwarded header, which
    # lets upstream_request_head skip looking for them. Leave it True (the safe default)
    # if you build a RequestHead yourself or add such a header to `headers`.
    has_forwarding_headers: bool

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: str,
        host: bytes,
        headers: list[Header],
        content_length: int | None,
        chunked: bool,
        keep_alive: bool,
        idempotent: bool,
        expects_continue: bool,
        has_forwarding_headers: bool = True,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.host = host
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.idempotent = idempotent
        self.expects_continue = expects_continue
        self.has_forwarding_headers = has_forwarding_headers

    @property
    def body_length(self) -> int | None:
        """Body bytes before the next request, None when not known in advance (chunked)."""
        return None if self.chunked else self.content_length or 0


@dataclass(init=False)  # see RequestHead
class ResponseHead:
    """A server response head that passed the policy.

    `keep_alive` is False when the server will close: "Connection: close", HTTP/1.0
    without keep-alive, or a body delimited by closing (no Content-Length, not chunked).
    The last case is conservative for responses to HEAD, which only the caller knows.
    """

    status: int
    reason: bytes
    version: str
    headers: list[Header]
    content_length: int | None
    chunked: bool
    keep_alive: bool
    no_body: bool

    def __init__(
        self,
        status: int,
        reason: bytes,
        version: str,
        headers: list[Header],
        content_length: int | None,
        chunked: bool,
        keep_alive: bool,
        no_body: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.no_body = no_body


class _PolicyError(Exception):
    """Internal: a head breaks the policy. Converted to the public error at the boundary."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Controls:
    """What the noted headers of one message say."""

    __slots__ = (
        "close",
        "content_lengths",
        "expect_continue",
        "forwarding",
        "hosts",
        "keep_alive",
        "loop_marks",
        "named",
        "transfer_encodings",
    )

    def __init__(self) -> None:
        self.hosts: tuple[bytes, ...] = ()
        self.content_lengths: tuple[bytes, ...] = ()
        self.transfer_encodings: tuple[bytes, ...] = ()
        self.named: frozenset[bytes] = frozenset()  # headers Connection declares hop-by-hop
        self.close = False
        self.keep_alive = False
        self.expect_continue = False
        self.forwarding = False  # X-Forwarded-*, Forwarded or X-Real-IP present
        self.loop_marks: tuple[bytes, ...] = ()  # X-Bascule-Loop values


_NO_CONTROLS: Final = _Controls()  # never written to: only read when no header was noted


# -- requests -------------------------------------------------------------------------------


def check_request_head(
    method: bytes,
    target: bytes,
    version: str,
    headers: list[Header],
    limits: HeadLimits,
    loop_id: bytes = b"",
) -> RequestHead:
    """Validate a parsed request head; raise ClientProtocolError(status, reason) if unsafe.

    `version` is "1.1"/"1.0" (anything else is refused); `headers` are (name, value)
    as llhttp reports them (see `heads.fields`). A request whose X-Bascule-Loop names
    `loop_id` (this instance, see ForwardingPolicy) is refused with 508. The caller answers
    a rejection with `error_response` and closes the connection.
    """
    try:
        return _check_request(method, target, version, headers, limits, loop_id)
    except _PolicyError as reject:
        raise ClientProtocolError(reject.status, reject.reason) from None


def _check_request(
    method: bytes,
    target: bytes,
    version: str,
    headers: list[Header],
    limits: HeadLimits,
    loop_id: bytes = b"",
) -> RequestHead:
    if version != "1.1" and version != "1.0":
        raise _PolicyError(505, f"HTTP version {version!r} is not supported (use 1.1 or 1.0)")
    if method not in _PLAIN_METHODS:
        _check_method(method)
    if len(target) > limits.max_request_line:
        raise _PolicyError(
            414, f"request target is {len(target)} bytes, limit {limits.max_request_line}"
        )
    authority = None
    if target[:1] != b"/" or 1 in target.translate(_TARGET_CLASS):
        target, authority = _unusual_target(method, target)
    shape = _checked_shape(headers, limits, "request", _REQUEST_NOTED)
    kept = shape.kept_of(headers)
    controls = _read_controls(headers, shape.noted, "request") if shape.noted else _NO_CONTROLS
    if controls.loop_marks and loop_id:
        _check_loop(controls.loop_marks, loop_id)
    if controls.content_lengths or controls.transfer_encodings:
        content_length, chunked = _framing(controls, "request")
        if chunked and version == "1.0":
            # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            raise _PolicyError(400, "Transfer-Encoding in an HTTP/1.0 request (use HTTP/1.1)")
        body_limit = limits.max_request_body
        if body_limit and content_length is not None and content_length > body_limit:
            raise _PolicyError(
                413,
                f"request body of {content_length} bytes (Content-Length) is over "
                f"http.max_request_body, {body_limit} bytes",
            )
    else:
        content_length, chunked = None, False
    host = _request_host(controls.hosts, version)
    if controls.named:
        kept = _without_named(kept, controls.named)
    if authority is not None:
        host = authority
        kept = _with_host_header(kept, authority)
    http11 = version == "1.1"
    return RequestHead(
        method,
        target,
        version,
        host,
        kept,
        content_length,
        chunked,
        not controls.close and (http11 or controls.keep_alive),
        method in _IDEMPOTENT_METHODS,
        # RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
        controls.expect_continue and http11,
        controls.forwarding,
    )


def _check_loop(marks: tuple[bytes, ...], loop_id: bytes) -> None:
    for mark in marks:
        if loop_id in mark:
            raise _PolicyError(
                508,
                f"request loop detected: this request already passed through this Bascule "
                f"(X-Bascule-Loop {_show(loop_id)}); a backend server is one of its own "
                "frontends, directly or through another proxy",
            )


def _check_method(method: bytes) -> None:
    if not method or method.translate(None, _TCHARS):
        raise _PolicyError(400, f"method '{_show(method)}' is not a valid token")
    if method == b"CONNECT":
        raise _PolicyError(501, "CONNECT is not supported: this is a reverse proxy, not a tunnel")


def _unusual_target(method: bytes, target: bytes) -> tuple[bytes, bytes | None]:
    """Check a target that is not plain origin-form: return (target, authority or None)."""
    if not target or 1 in target.translate(_TARGET_CLASS):
        raise _PolicyError(400, f"request target '{_show(target)}' is empty or has space/CTL")
    if target == b"*":
        if method != b"OPTIONS":
            raise _PolicyError(400, "request target '*' is only allowed with OPTIONS")
        return target, None
    prefix = target[:8].lower()
    if prefix.startswith(b"http://") or prefix == b"https://":
        return _from_absolute_form(target)
    raise _PolicyError(
        400, f"request target '{_show(target)}' must start with '/' or be an http(s):// URL"
    )


def _from_absolute_form(target: bytes) -> tuple[bytes, bytes]:
    """Split "http://authority/path" into origin-form path and authority (RFC 9112 3.2.2)."""
    rest = target[target.find(b"://") + 3 :]
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter)
        if 0 <= found < end:
            end = found
    authority, path = rest[:end], rest[end:]
    if b"@" in authority:
        raise _PolicyError(400, "user info in the request target is not allowed")
    match = _HOST.fullmatch(authority)
    if match is None:
        raise _PolicyError(400, f"invalid authority '{_show(authority)}' in the request target")
    if not _port_in_range(match.group(2)):
        raise _PolicyError(
            400, f"port out of range in the request target's authority '{_show(authority)}'"
        )
    if path[:1] == b"#":
        path = b""
    if path[:1] != b"/":
        path = b"/" + path
    return path, authority


def _request_host(hosts: tuple[bytes, ...], version: str) -> bytes:
    """The Host value, after the checks RFC 9112 3.2 demands of a server."""
    if len(hosts) == 1:
        host = _valid_hosts.get(hosts[0])
        if host is not None:
            return host
        match = _HOST.fullmatch(hosts[0])
        if match is not None and _port_in_range(match.group(2)):
            host = match.group(1)
            if len(_valid_hosts) < _MEMO_LIMIT and len(hosts[0]) <= _MEMO_HOST_MAX:
                _valid_hosts[hosts[0]] = host
            return host
        if not hosts[0].strip(b" \t"):
            raise _PolicyError(400, "empty Host header")
        if match is not None:
            raise _PolicyError(
                400, f"port out of range (0-{_MAX_PORT}) in Host header '{_show(hosts[0])}'"
            )
        raise _PolicyError(400, f"invalid Host header '{_show(hosts[0])}' (expected host[:port])")
    if hosts:
        raise _PolicyError(400, "duplicate Host header (send exactly one)")
    if version == "1.1":
        raise _PolicyError(400, "missing Host header (required in HTTP/1.1)")
    return b""


def _port_in_range(port: bytes | None) -> bool:
    """A Host or authority port (digits, maybe none) is a TCP port number, 0-65535: a
    bigger one names no server, and parsers behind us disagree on what it means
    (wrapped, truncated, refused). Leading zeros are allowed (RFC 3986 port = *DIGIT)."""
    if not port:
        return True
    digits = port.lstrip(b"0")
    return len(digits) <= 5 and (not digits or int(digits) <= _MAX_PORT)


def _with_host_header(kept: list[Header], host: bytes) -> list[Header]:
    """`kept` with Host saying `host`: the absolute-form authority wins (RFC 9112 3.2.3)."""
    for index, (name, _) in enumerate(kept):
        if name.lower() == b"host":
            return [*kept[:index], (name, host), *kept[index + 1 :]]
    return [(b"Host", host), *kept]


class ForwardingPolicy:
    """How one frontend writes the forwarding headers: built once per config.

    Every request gets our X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host (when
    there is a Host), Forwarded and X-Real-IP lines, and X-Bascule-Loop when `instance`
    is set. What the client sent in those headers depends on `replace` and on trust:

    * `replace`: all of it is dropped, whoever the client is (an edge proxy).
    * append (the default), a client in `networks`: its X-Forwarded-For and Forwarded
      elements are kept and ours appended, and its X-Forwarded-Proto, X-Forwarded-Host
      and X-Real-IP are passed on instead of ours (a proxy we trust knows better).
    * append, any other client: X-Forwarded-For is kept and appended to (what HAProxy and
      nginx do), its Forwarded elements keep only their `for=` (a client's claims of proto
      or host are not passed on), and ours replace its X-Forwarded-Proto, -Host and
      X-Real-IP.

    So the last Forwarded element and the rightmost X-Forwarded-For address are always
    the ones we added. Loop detection uses a private header rather than Via (RFC 9110
    7.6.3) because servers act on Via: nginx's `gzip_proxied off`, its default, stops
    compressing any request that carries one.
    """

    __slots__ = ("_lines", "_marker", "_proto", "instance", "networks", "replace")

    def __init__(
        self,
        networks: Sequence[str] = (),
        replace: bool = False,
        instance: bytes = b"",
        proto: str = "http",
    ) -> None:
        self.networks = tuple(ipaddress.ip_network(network) for network in networks)
        self.replace = replace
        self.instance = instance  # this process's loop-detection id; b"" for none
        self._proto = _PROTO_BYTES.get(proto) or proto.encode("ascii")
        self._marker = b"%b: %b\r\n" % (LOOP_HEADER, instance) if instance else b""
        # Our lines by (client IP, Host), for requests that carry no forwarding header.
        self._lines: dict[tuple[str, bytes], bytes] = {}

    def trusts(self, client_ip: str) -> bool:
        """Is `client_ip` in a trusted network? Asked once per client connection."""
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False  # not an IP peer (a unix socket)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener's IPv4 client
        return any(address in network for network in self.networks)

    def lines(self, client_ip: str, host: bytes) -> bytes:
        """Our forwarding header lines for a request that carries none (memoized)."""
        key = (client_ip, host)
        found = self._lines.get(key)
        if found is not None:
            return found
        found = self._fields(client_ip, host, _NO_PRIOR)
        if len(host) <= _MEMO_HOST_MAX:
            if len(self._lines) >= _MEMO_LIMIT:
                self._lines.clear()  # many clients: start over rather than grow without bound
            self._lines[key] = found
        return found

    def merged(self, client_ip: str, host: bytes, prior: _Prior, trusted: bool) -> bytes:
        """Our forwarding header lines for a request that carried `prior`."""
        if self.replace:
            return self.lines(client_ip, host)
        if not trusted:
            prior = _Prior(prior.for_, _for_only(prior.forwarded), None, None, None)
        return self._fields(client_ip, host, prior)

    def _fields(self, client_ip: str, host: bytes, prior: _Prior) -> bytes:
        ip = client_ip.encode("ascii")
        proto = self._proto
        # RFC 7239 6: an IPv6 node is bracketed and quoted; host is a token or quoted-string.
        node = b'"[' + ip + b']"' if ":" in client_ip else ip or b"unknown"
        element = b"for=" + node + b";host=" + _token_or_quoted(host) if host else b"for=" + node
        shown_host = prior.host if prior.host is not None else host
        return b"".join(
            (
                b"X-Forwarded-For: ",
                _appended(prior.for_, ip) if prior.for_ else ip,
                b"\r\nX-Forwarded-Proto: ",
                proto if prior.proto is None else prior.proto,
                b"\r\nX-Forwarded-Host: " + shown_host if shown_host else b"",
                b"\r\nForwarded: ",
                _appended(prior.forwarded, element + b";proto=" + proto),
                b"\r\nX-Real-IP: ",
                ip if prior.real_ip is None else prior.real_ip,
                b"\r\n",
                *_header_lines(prior.others),  # a trusted client's other claims
                self._marker,
            )
        )


class _Prior:
    """The forwarding headers a client sent: every X-Forwarded-For and Forwarded value,
    the first X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP (None when absent), and
    the other claims (X-Forwarded-Port, -Ssl, ...) as they came."""

    __slots__ = ("for_", "forwarded", "host", "others", "proto", "real_ip")

    def __init__(
        self,
        for_: list[bytes],
        forwarded: list[bytes],
        proto: bytes | None,
        host: bytes | None,
        real_ip: bytes | None,
        others: list[Header] | None = None,
    ) -> None:
        self.for_ = for_
        self.forwarded = forwarded
        self.proto = proto
        self.host = host
        self.real_ip = real_ip
        self.others: list[Header] = [] if others is None else others


_NO_PRIOR: Final = _Prior([], [], None, None, None)
# Without a frontend (tests, tools): no trusted network, no loop marker.
_DEFAULT_POLICIES: Final = {"http": ForwardingPolicy(), "https": ForwardingPolicy(proto="https")}


def upstream_request_head(
    head: RequestHead,
    client_ip: str,
    client_port: int,
    proto: str = "http",
    lines: bytes | None = None,
    policy: ForwardingPolicy | None = None,
    trusted: bool = False,
) -> bytes:
    """The request head to send to a server, always HTTP/1.1 and keep-alive by default.

    The forwarding headers follow `policy` (see ForwardingPolicy; without one, a
    policy for `proto` that trusts no client), `trusted` saying whether the client is in
    its trusted networks. `client_port` is accepted for interface stability but not sent:
    RFC 7239 allows a port in for=, but it only helps correlate logs and leaks client
    details to every server. `lines`, when given, are `head.headers` already written as
    "Name: value" lines.
    """
    if policy is None:
        policy = _DEFAULT_POLICIES.get(proto) or ForwardingPolicy(proto=proto)
    headers = head.headers
    if head.has_forwarding_headers:
        headers, prior = _split_forwarding(headers)
        ours = policy.merged(client_ip, head.host, prior, trusted)
    else:
        ours = policy.lines(client_ip, head.host)
    if head.content_length is not None:
        framing = b"Content-Length: %d\r\n\r\n" % head.content_length
    elif head.chunked:
        framing = b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        framing = b"\r\n"
    written = _header_lines(headers) if lines is None else (lines,)
    return b"".join((head.method, b" ", head.target, b" HTTP/1.1\r\n", *written, ours, framing))


def server_host_header(host: str, port: int) -> str:
    """The Host a request to a server at `host`:`port` carries when the client gave none
    (and an HTTP check's default): its address, without the default port 80."""
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal needs brackets
    return name if port == 80 else f"{name}:{port}"


def with_server_host(wire: bytes, authority: bytes) -> bytes:
    """The upstream head `wire` of a request that has no Host (HTTP/1.0 allows that) with
    `Host: <authority>` added, the server's address: sent as HTTP/1.1, the request needs
    one (RFC 9112 3.2), and an empty one is what we refuse from clients. nginx sends its
    upstream's name the same way (`$proxy_host`)."""
    start = wire.find(b"\r\n") + 2  # after the request line
    return b"".join((wire[:start], b"Host: ", authority, b"\r\n", wire[start:]))


def _header_lines(headers: list[Header]) -> tuple[bytes, ...]:
    """b"Name: value" lines, each with its CRLF, as one bytes (one join, compiled loop)."""
    if not headers:
        return ()
    pieces: list[bytes] = []
    for name, value in headers:  # four appends: no tuple per header, unlike `+=`
        pieces.append(name)
        pieces.append(b": ")
        pieces.append(value)
        pieces.append(b"\r\n")
    return (b"".join(pieces),)


def _split_forwarding(headers: list[Header]) -> tuple[list[Header], _Prior]:
    """Headers without X-Forwarded-* / Forwarded / X-Real-IP, and what the client sent in them."""
    kept: list[Header] = []
    prior = _Prior([], [], None, None, None, [])
    memo = _lowered_names
    for name, value in headers:
        lname = memo.get(name) or name.lower()
        if lname not in _PROXY_SET:
            kept.append((name, value))
        elif lname == b"x-forwarded-for":
            prior.for_.append(value)
        elif lname == b"forwarded":
            prior.forwarded.append(value)
        elif lname == b"x-forwarded-proto":
            prior.proto = _first_claim(prior.proto, value)
        elif lname == b"x-forwarded-host":
            prior.host = _first_claim(prior.host, value)
        elif lname == b"x-real-ip":
            prior.real_ip = _first_claim(prior.real_ip, value)
        else:
            prior.others.append((name, value))
    return kept, prior


def _first_claim(current: bytes | None, value: bytes) -> bytes | None:
    """The first non-empty value of a single-valued header (its first list member)."""
    if current is not None:
        return current
    first = value.split(b",", 1)[0].strip(b" \t")
    return first or None


def _for_only(values: list[bytes]) -> list[bytes]:
    """The `for=` pairs of Forwarded values, one element each: what an untrusted client's
    Forwarded may pass on (its path of addresses, like X-Forwarded-For). Elements without
    `for=` are dropped, and so is a whole value that does not parse (RFC 7239 4)."""
    kept: list[bytes] = []
    for value in values:
        elements: list[bytes] = []
        current: bytes | None = None
        position, size = 0, len(value)
        while position < size:
            match = _FORWARDED_PAIR.match(value, position)
            if match is None:
                elements = []
                current = None
                break
            name, pair_value, separator = match.groups()
            if name is not None and name.lower() == b"for" and current is None:
                current = b"for=" + pair_value
            if separator != b";":  # "," or the end: the element is over
                if current is not None:
                    elements.append(current)
                current = None
            position = match.end()
        if current is not None:
            elements.append(current)
        kept.extend(elements)
    return kept


def _appended(prior: list[bytes], ours: bytes) -> bytes:
    """A list-valued header with our element after the client's (empty members dropped)."""
    members = [value for value in prior if value.strip(b" \t")]
    return b", ".join([*members, ours])


def _token_or_quoted(value: bytes) -> bytes:
    if value and 1 not in value.translate(_NON_TOKEN_CLASS):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# -- responses ------------------------------------------------------------------------------


def check_response_head(
    status: int,
    reason: bytes,
    version: str,
    headers: list[Header],
    limits: HeadLimits,
) -> ResponseHead:
    """Validate a server's response head; raise UpstreamProtocolError (client gets 502)."""
    try:
        return _check_response(status, reason, version, headers, limits)
    except _PolicyError as reject:
        raise UpstreamProtocolError(reject.reason) from None


def _check_response(
    status: int,
    reason: bytes,
    version: str,
    headers: list[Header],
    limits: HeadLimits,
) -> ResponseHead:
    if not 100 <= status <= 599:
        raise _PolicyError(502, f"server sent status code {status}, outside 100-599")
    if version != "1.1" and version != "1.0":
        raise _PolicyError(502, f"server answered with unsupported HTTP version {version!r}")
    if 1 in reason.translate(_FIELD_CLASS):
        raise _PolicyError(
            502, f"control character in the server's reason phrase '{_show(reason)}'"
        )
    shape = _checked_shape(headers, limits, "response", _RESPONSE_NOTED)
    kept = shape.kept_of(headers)
    controls = _read_controls(headers, shape.noted, "response") if shape.noted else _NO_CONTROLS
    if controls.content_lengths or controls.transfer_encodings:
        content_length, chunked = _framing(controls, "response")
        if chunked and version == "1.0":
            raise _PolicyError(502, "server sent Transfer-Encoding in an HTTP/1.0 response")
    else:
        content_length, chunked = None, False
    no_body = status < 200 or status == 204 or status == 304
    if status < 200 or status == 204:
        # RFC 9110 8.6 / RFC 9112 6.1: these never carry framing headers; do not relay any.
        content_length, chunked = None, False
    if controls.named:
        kept = _without_named(kept, controls.named)
    keep_alive = (
        not controls.close
        and (version == "1.1" or controls.keep_alive)
        and (no_body or chunked or content_length is not None)
    )
    return ResponseHead(status, reason, version, kept, content_length, chunked, keep_alive, no_body)


def client_response_head(
    head: ResponseHead, framing: Framing, keep_alive: bool, http10_client: bool = False
) -> bytes:
    """The response head to send to the client.

    `framing` is how the caller will send the body: "length" (Content-Length), "chunked"
    (we re-chunk), "close" (body ends when we close) or "none" (no body: HEAD, 1xx, 204,
    304; a Content-Length the server sent is kept since it describes the resource).
    """
    if framing == "close" and keep_alive:
        raise ValueError("framing 'close' ends the connection: keep_alive must be False")
    if framing == "chunked" and http10_client:
        raise ValueError("an HTTP/1.0 client cannot read chunked framing: use 'close'")
    parts = [_STATUS_LINE_STARTS[head.status], head.reason, b"\r\n", *_header_lines(head.headers)]
    if framing == "length" or (framing == "none" and head.content_length is not None):
        if head.content_length is None:
            raise ValueError("framing 'length' needs a response with a Content-Length")
        parts.append(b"Content-Length: %d\r\n" % head.content_length)
    elif framing == "chunked":
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n\r\n")
    elif http10_client:
        parts.append(b"Connection: keep-alive\r\n\r\n")
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


def error_response(status: int, detail: str) -> bytes:
    """A complete response the proxy sends by itself, then closes the connection.

    The body is one line of text/plain: "503 Service Unavailable: <detail>".
    """
    if not 100 <= status <= 599:
        raise ValueError(f"status {status} is outside 100-599")
    phrase = _reason_phrase(status)
    text = f"{status} {phrase}: {_printable(detail)}" if detail else f"{status} {phrase}"
    body = (text + "\n").encode("utf-8")
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii")),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n",
            b"Cache-Control: no-cache\r\n",
            b"\r\n",
            body,
        )
    )


def _reason_phrase(status: int) -> str:
    if status in _PHRASE_OVERRIDES:
        return _PHRASE_OVERRIDES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _printable(detail: str) -> str:
    """Detail text safe for a one-line body: no control characters, bounded length."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in detail[:_ERROR_DETAIL_LIMIT])
    return cleaned + "..." if len(detail) > _ERROR_DETAIL_LIMIT else cleaned


# -- repeated heads ---------------------------------------------------------------------------


class RequestMemo:
    """One client connection's last request head, what the policy made of it, and the
    head sent upstream for it.

    A client sends nearly the same head on every request of a connection: the same
    method and headers, often another path. `check` takes a head as raw bytes (see
    `heads.HeadReader`). When they equal the previous head's, the verdict and upstream
    head are reused; when only a plain origin-form target ("/...") differs, the policy
    would decide the same thing but for the target, so the verdict and upstream head are
    reused with the new target. Anything else is split and goes through
    `check_request_head`, and becomes the new memo. Exact comparisons only, so the result
    is always what `check_request_head` + `upstream_request_head` give.
    """

    __slots__ = (
        "_client_ip",
        "_client_port",
        "_fields",
        "_head",
        "_policy",
        "_raw",
        "_suffix",
        "_trusted",
        "_wire",
    )

    def __init__(
        self, client_ip: str, client_port: int, policy: ForwardingPolicy | None = None
    ) -> None:
        self._client_ip = client_ip
        self._client_port = client_port
        self._policy = _DEFAULT_POLICIES["http"] if policy is None else policy
        self._trusted = self._policy.trusts(client_ip)  # once per connection
        self._raw = b""  # the last head as received
        self._fields = b""  # its bytes after the request line
        self._head: RequestHead | None = None
        self._wire = b""  # upstream head of _head
        self._suffix = b""  # _wire after "METHOD TARGET"

    def check(self, raw: bytes, limits: HeadLimits) -> tuple[RequestHead, bytes]:
        """(checked head, head to send upstream) for the raw head `raw`; raises
        ClientProtocolError like `check_request_head`."""
        memo = self._head
        if memo is not None and raw == self._raw:
            return memo, self._wire
        method, target, version, start = request_line(raw)
        plain = _plain_target(target, limits)  # an absolute-form target changes Host
        if (
            plain
            and memo is not None
            and method == memo.method
            and version == memo.version
            and len(raw) - len(self._fields) == start - 2  # the fields begin where the memo's do
            and raw.endswith(self._fields)
        ):
            return self._retargeted(raw, memo, target)
        headers: list[Header] = []
        as_written = read_fields(raw, start, "request", headers)
        policy = self._policy
        head = check_request_head(method, target, version, headers, limits, policy.instance)
        # Every field passed on unchanged and each line as the proxy would write it:
        # send the client's field lines as they are (the same bytes, without a join).
        same = as_written and head.headers is headers and not head.has_forwarding_headers
        lines = raw[start : len(raw) - 2] if same else None
        wire = upstream_request_head(
            head,
            self._client_ip,
            self._client_port,
            lines=lines,
            policy=policy,
            trusted=self._trusted,
        )
        if plain:
            self._raw, self._fields, self._head, self._wire = raw, raw[start - 2 :], head, wire
            self._suffix = wire[len(method) + 1 + len(target) :]
        else:
            self._raw, self._head = raw, None  # no memo hit without _head: kept for last_raw
        return head, wire

    @property
    def last_raw(self) -> bytes:
        """The last request head that passed, as received."""
        return self._raw

    def _retargeted(
        self, raw: bytes, head: RequestHead, target: bytes
    ) -> tuple[RequestHead, bytes]:
        head = RequestHead(
            head.method,
            target,
            head.version,
            head.host,
            head.headers,
            head.content_length,
            head.chunked,
            head.keep_alive,
            head.idempotent,
            head.expects_continue,
            head.has_forwarding_headers,
        )
        wire = b"".join((head.method, b" ", target, self._suffix))
        self._raw, self._head, self._wire = raw, head, wire
        return head, wire


def ignorable_upgrade(raw: bytes) -> bool:
    """May the upgrade this request head offers be ignored and the request answered as
    HTTP/1.1? Yes for an offer of HTTP/2 only (`Upgrade: h2c`, which Java's HttpClient and
    `curl --http2` send on http:// URLs) on a request without a body: a server is free
    to ignore Upgrade (RFC 9110 7.8), and HAProxy's servers do. Not for WebSocket or
    other protocols, which the client needs, nor with a body, which llhttp does not frame
    once it sees an upgrade."""
    headers: list[Header] = []
    read_fields(raw, request_line(raw)[3], "request", headers)
    tokens: list[bytes] = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"upgrade":
            tokens += [t.strip(b" \t").lower() for t in value.split(b",")]
        elif lname == b"transfer-encoding" or (
            lname == b"content-length" and value.strip(b" \t") != b"0"
        ):
            return False
    return bool(tokens) and all(token == b"h2c" for token in tokens)


def _plain_target(target: bytes, limits: HeadLimits) -> bool:
    """Origin-form within the length limit: the policy passes it through unchanged."""
    return (
        target[:1] == b"/"
        and len(target) <= limits.max_request_line
        and 1 not in target.translate(_TARGET_CLASS)
    )


class ResponseMemo:
    """One server connection's last response head, what the policy made of it, and the
    last head sent to a client for it.

    A server answers with the same head again and again (nginx's Date changes once a
    second). A head whose raw bytes equal the previous one's gets the same verdict and
    the same client head; anything else is split and goes through `check_response_head`.
    """

    __slots__ = ("_client_for", "_client_head", "_framing", "_head", "_http10", "_keep", "_raw")

    def __init__(self) -> None:
        self._raw = b""
        self._head: ResponseHead | None = None
        # The last client head, and the arguments it was made for. Compared one by one,
        # not as a tuple: compiled, that builds no tuple and makes no generic comparison.
        self._client_head = b""
        self._client_for: ResponseHead | None = None
        self._framing: Framing = "none"
        self._keep = False
        self._http10 = False

    def check(self, raw: bytes, status: int, limits: HeadLimits) -> ResponseHead:
        """The verdict on raw response head `raw` whose status code llhttp read as
        `status`; raises UpstreamProtocolError like `check_response_head`."""
        head = self._head
        if head is not None and raw == self._raw:
            return head
        reason, version, start = status_line(raw)
        head = check_response_head(status, reason, version, fields(raw, start, "response"), limits)
        self._raw, self._head = raw, head
        return head

    def client_head(
        self, head: ResponseHead, framing: Framing, keep_alive: bool, http10_client: bool
    ) -> bytes:
        """Like `client_response_head`."""
        if (
            head is self._client_for
            and framing == self._framing
            and keep_alive == self._keep
            and http10_client == self._http10
        ):
            return self._client_head
        data = client_response_head(head, framing, keep_alive, http10_client)
        self._client_head, self._client_for = data, head
        self._framing, self._keep, self._http10 = framing, keep_alive, http10_client
        return data


# -- shared by both directions --------------------------------------------------------------


def check_trailers(section: bytes, limits: HeadLimits, side: str) -> bytes:
    """The trailer section of a chunked message, as received (field lines and the blank
    line, see heads.HeadReader.trailers), checked like a head's fields; return the field
    lines to forward, each ending in CRLF (b"" when none is left).

    Names must be tokens and values field bytes, within the head limits (431). Framing and
    routing fields are refused (400; `_TRAILER_REFUSED`), hop-by-hop and forwarding fields
    removed. Raises ClientProtocolError for `side` "request", else UpstreamProtocolError.
    """
    try:
        return _check_trailers(section, limits, side)
    except _PolicyError as reject:
        if side == "request":
            raise ClientProtocolError(reject.status, reject.reason) from None
        raise UpstreamProtocolError(reject.reason) from None


def _check_trailers(section: bytes, limits: HeadLimits, side: str) -> bytes:
    found: list[Header] = []
    as_written = read_fields(section, 0, side, found)
    if len(found) > limits.max_headers:
        raise _PolicyError(
            431, f"too many {side} trailer fields: {len(found)}, limit {limits.max_headers}"
        )
    if len(section) > limits.max_header_bytes:
        raise _PolicyError(
            431,
            f"{side} trailer section is {len(section)} bytes, limit {limits.max_header_bytes}",
        )
    kept: list[Header] = []
    for name, value in found:
        lname = _lowered_names.get(name) or _lower_name(name, side)
        if 1 in value.translate(_FIELD_CLASS):
            raise _PolicyError(400, _first_control_byte([(name, value)], side + " trailer"))
        if lname in _TRAILER_REFUSED:
            raise _PolicyError(
                400,
                f"'{_show(name)}' is not allowed in the {side} trailers "
                "(framing and routing fields belong in the header section)",
            )
        if lname not in _TRAILER_REMOVED:
            kept.append((name, value))
    if as_written and len(kept) == len(found):
        return section[:-2]  # the field lines as received, without the blank line
    return b"".join(_header_lines(kept))


def _checked_shape(
    headers: list[Header], limits: HeadLimits, side: str, noted_names: frozenset[bytes]
) -> _Shape:
    """Check the limits and bytes of a message's headers; return their shape."""
    count = len(headers)
    if count > limits.max_headers:
        raise _PolicyError(431, f"too many {side} headers: {count}, limit {limits.max_headers}")
    # A loop, not map(itemgetter): compiled, it is a few instructions per header where
    # each call through map is a generic call.
    name_list: list[bytes] = []
    value_list: list[bytes] = []
    for name, value in headers:
        name_list.append(name)
        value_list.append(value)
    names = tuple(name_list)
    shapes = _request_shapes if noted_names is _REQUEST_NOTED else _response_shapes
    shape = shapes.get(names)
    if shape is None:
        shape = _Shape(names, side, noted_names)
        if len(shapes) < _MEMO_LIMIT and shape.name_bytes <= _SHAPE_MAX_NAME_BYTES:
            shapes[names] = shape
    values = b"".join(value_list)
    if len(values) + shape.name_bytes > limits.max_header_bytes:
        _check_header_bytes(headers, limits, side)
    # llhttp already refuses these; checked again because this is the security boundary.
    if 1 in values.translate(_FIELD_CLASS):
        raise _PolicyError(400, _first_control_byte(headers, side))
    return shape


class _Shape:
    """What a sequence of header names means, worked out once per distinct sequence.

    Clients and servers send the same names in the same order on nearly every message,
    so checking each name and sorting it into "copied as is" or "noted" (the few headers
    that matter to the proxy) is done once and the answer reused. Per message, what is
    left is collecting names and values, and a few C-level calls.
    """

    __slots__ = ("kept", "name_bytes", "noted")

    def __init__(self, names: tuple[bytes, ...], side: str, noted_names: frozenset[bytes]):
        kept: list[int] = []
        noted: list[tuple[bytes, int]] = []
        for index, name in enumerate(names):
            lname = _lowered_names.get(name) or _lower_name(name, side)
            if lname in noted_names:
                noted.append((lname, index))
                if lname not in _NOTED_BUT_KEPT:
                    continue
            kept.append(index)
        # Indexes of the headers copied as is; None when that is all of them.
        self.kept = None if len(kept) == len(names) else tuple(kept)
        self.noted = tuple(noted)  # (lower-cased name, index) of the noted headers
        self.name_bytes = sum(map(len, names)) + 4 * len(names)  # ": " and CRLF each

    def kept_of(self, headers: list[Header]) -> list[Header]:
        """The headers copied as is, in order: `headers` itself when that is all of them
        (which RequestMemo relies on), else a new list. Lists of headers are never
        changed once built."""
        if self.kept is None:
            return headers
        return [headers[index] for index in self.kept]


def _check_header_bytes(headers: list[Header], limits: HeadLimits, side: str) -> None:
    """Total size as sum(len(name) + len(value) + 4) (": " and CRLF) against the limit."""
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limits.max_header_bytes:
        raise _PolicyError(
            431, f"{side} header section is {size} bytes, limit {limits.max_header_bytes}"
        )


def _lower_name(name: bytes, side: str) -> bytes:
    """Check that a header name is a token (RFC 9110 5.1) and return it lower-cased."""
    bad = name.translate(None, _TCHARS)
    if bad:
        raise _PolicyError(
            400, f"invalid byte '{_show(bad[:1])}' in {side} header name '{_show(name)}'"
        )
    if not name:
        raise _PolicyError(400, f"empty header name in the {side}")
    lname = name.lower()
    if len(name) <= _MEMO_NAME_MAX and len(_lowered_names) < _MEMO_LIMIT:
        _lowered_names[name] = lname
    return lname


def _first_control_byte(headers: list[Header], side: str) -> str:
    for name, value in headers:
        bad = value.translate(None, _FIELD_BYTES)
        if bad:
            return f"control byte '{_show(bad[:1])}' in value of {side} header '{_show(name)}'"
    raise AssertionError("unreachable: the caller found a control byte")


def _read_controls(
    headers: list[Header], noted: tuple[tuple[bytes, int], ...], side: str
) -> _Controls:
    """Interpret the noted headers of one message, given as (lower-cased name, index)."""
    controls = _Controls()
    for lname, index in noted:
        value = headers[index][1]
        if lname == b"host":
            controls.hosts += (value,)
        elif lname == b"connection":
            if value.lower() == b"keep-alive":  # by far the most common value
                controls.keep_alive = True
            else:
                _read_connection(value, controls)
        elif lname == b"content-length":
            controls.content_lengths += (value,)
        elif lname == b"transfer-encoding":
            controls.transfer_encodings += (value,)
        elif lname == b"expect":
            if value.rstrip(b" \t").lower() == b"100-continue":
                controls.expect_continue = True
        elif lname in _PROXY_SET:
            controls.forwarding = True
        elif lname == _LOOP_NAME:
            controls.loop_marks += (value,)
        elif lname in _CGI_FRAMING_ALIASES:
            raise _PolicyError(
                400, f"header '{_show(lname)}' in the {side} could be read as framing by CGI"
            )
    return controls


def _read_connection(value: bytes, controls: _Controls) -> None:
    named: set[bytes] = set()
    for token in value.lower().split(b","):
        option = token.strip(b" \t")
        if option == b"close":
            controls.close = True
        elif option == b"keep-alive":
            controls.keep_alive = True
        elif option and option not in _HOP_BY_HOP and option not in _NEVER_NAMED_AWAY:
            named.add(option)
    if named:
        controls.named = controls.named | named


def _without_named(kept: list[Header], named: frozenset[bytes]) -> list[Header]:
    """Remove headers the Connection header declared hop-by-hop (RFC 9110 7.6.1)."""
    memo = _lowered_names
    return [header for header in kept if (memo.get(header[0]) or header[0].lower()) not in named]


def _framing(controls: _Controls, side: str) -> tuple[int | None, bool]:
    """(content_length, chunked) from the original framing headers, or reject."""
    lengths, codings = controls.content_lengths, controls.transfer_encodings
    if lengths and codings:
        raise _PolicyError(400, f"both Transfer-Encoding and Content-Length in the {side}")
    if codings:
        # Stricter than RFC 9112 on purpose (like HAProxy): we accept exactly one header
        # saying exactly "chunked". Coding lists ("gzip, chunked"), repeats and odd spacing
        # are where front and back parsers disagree about where a body ends (TE.TE and
        # TE.CL smuggling), and we would have to decode other codings to find the end.
        if len(codings) > 1:
            raise _PolicyError(400, f"duplicate Transfer-Encoding header in the {side}")
        if codings[0].lower() != b"chunked":
            raise _PolicyError(
                400,
                f"Transfer-Encoding '{_show(codings[0])}' in the {side}: only a single "
                "'chunked' is accepted",
            )
        return None, True
    if len(lengths) > 1:
        raise _PolicyError(400, f"duplicate Content-Length header in the {side}")
    return _parse_content_length(lengths[0], side), False


def _parse_content_length(value: bytes, side: str) -> int:
    # isdigit() on bytes is ASCII-only: rejects signs, spaces, commas, hex and "".
    if not value.isdigit():
        raise _PolicyError(
            400, f"malformed Content-Length '{_show(value)}' in the {side} (digits only)"
        )
    # Strip zeros before int() so a huge run of digits neither overflows nor is slow.
    if len(value.lstrip(b"0")) > 19 or int(value) > MAX_CONTENT_LENGTH:
        raise _PolicyError(400, f"Content-Length '{_show(value)}' in the {side} is too large")
    return int(value)


def _show(raw: bytes) -> str:
    """Bytes as printable text for an error reason (escaped, bounded)."""
    shown = repr(raw[:64])[2:-1]
    return shown + "..." if len(raw) > 64 else shown
