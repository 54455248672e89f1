"""Taking a message head as raw bytes once llhttp has accepted it, and splitting it.

httptools hands a head over in pieces: one callback for the URL or the status, one per
header, and a call that formats the version. Each costs about as much as all the policy
work on a head, so the proxy does not ask for them. llhttp still parses every byte (it
validates the head and frames the body) and says when a head is complete; `HeadReader`
knows where that head began in the byte stream and takes its bytes whole.

Splitting those bytes is simple *because* llhttp accepted them (strict mode, see
http_policy's docstring): lines end in CRLF and hold no other CR or LF, there is no
obs-fold and no whitespace before ':', so the first blank line ends the head and every
field line splits at its first ':'. Leading whitespace of a value is dropped and trailing
whitespace kept, exactly as llhttp reports values. The differential test in
tests/unit/test_heads.py checks this against httptools' own callbacks.

Where a message begins: where the previous one ended, after any CR/LF bytes llhttp skips
between messages. The previous one ends after its head and its body. The body's size is
known from the policy's verdict, or, for a chunked body, from its framing: the reader
follows the chunk size lines in the bytes llhttp accepted (hex size, extensions up to the
CRLF, that many bytes and a CRLF; the last chunk is followed by the trailer section, field
lines up to a blank line), which also gives it the trailer section whole (`trailers`),
the one part of a message httptools reports only through per-header callbacks. It scans
a read only up to where llhttp has parsed it: the rest of a read once llhttp is done with
it, and up to the message's end when llhttp says the message is complete; there both must
agree, or the reader raises. Only the bytes of size lines and trailers are looked at;
chunk data is skipped by its size.
"""

from __future__ import annotations

from typing import Final

from bascule.errors import ClientProtocolError, UpstreamProtocolError

Header = tuple[bytes, bytes]

_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
_BLANK: Final = b"\r\n\r\n"
# Where the reader is in a chunked body.
_NOT_CHUNKED: Final = 0
_CHUNK_SIZE: Final = 1  # in a size line
_CHUNK_DATA: Final = 2  # in chunk data and its CRLF
_CHUNK_TRAILERS: Final = 3  # after the last chunk's size line
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


class HeadReader:
    """Locates message heads in a connection's byte stream.

    The connection calls `read` before feeding a read to the parser, `message_begun`,
    `take` and `message_done` from the parser's callbacks (message begin, headers
    complete, message complete), `skip` once the body's size is known, and `end_of_read`
    after the parser is done with the read.
    """

    __slots__ = (
        "_at",
        "_carry",
        "_chunk",
        "_chunk_carry",
        "_chunk_left",
        "_data",
        "_in_body",
        "_last",
        "in_head",
        "lost",
        "trailers",
    )

    _data: bytes
    _at: int
    _carry: bytes
    in_head: bool
    _in_body: bool
    lost: bool
    _chunk: int
    _chunk_left: int
    _chunk_carry: bytes
    trailers: bytes

    def __init__(self) -> None:
        self._last = b""  # the head taken last (kept across `reset`)
        self.reset()

    def reset(self) -> None:
        """The next read begins with a new message (a fresh exchange on a connection)."""
        self._data = b""
        # Offset in `_data` where the next head begins; past its end: in a later read;
        # -1: unknown (after a chunked body).
        self._at = 0
        self._carry = b""  # the start of a head that began in an earlier read
        self.in_head = False  # a message began and its head is not complete yet
        self._in_body = False  # a head was taken and its message is not complete yet
        # A message began where no head can be located (after a body of unknown length;
        # the connections refuse that earlier, and `take` raises).
        self.lost = False
        self._chunk = _NOT_CHUNKED
        self._chunk_left = 0  # chunk data bytes and CRLF still to come
        self._chunk_carry = b""  # the start of a size line or trailer section
        # The trailer section of the chunked message completed last: its field lines and
        # the blank line, as received (b"" when it had none).
        self.trailers = b""

    def read(self, data: bytes) -> None:
        self._data = data

    def message_begun(self) -> None:
        self.in_head = True
        if self._at < 0:
            self.lost = True

    def take(self) -> bytes:
        """The head llhttp has just found complete: start line, fields, blank line."""
        self.in_head = False
        data, start, shift = self._data, self._at, 0
        if self._carry:
            shift = len(self._carry)
            data, start, self._carry = self._carry + data, 0, b""
        if start < 0:
            raise RuntimeError("head taken at an unknown position")
        # llhttp skips empty lines before a message (RFC 9112 2.2). Indexing, not
        # startswith: compiled, it costs a few instructions instead of a method call.
        while start < len(data) and (data[start] == 13 or data[start] == 10):
            start += 1
        last = self._last
        if start == 0 and last and data.startswith(last):
            # The same head as the last one (most are): it ends where that one did, as
            # its only blank line is its end. No search, and the memos compare the
            # two by identity.
            self._at = len(last) - shift
            return last
        end = data.find(_BLANK, start)
        if end < 0:
            raise RuntimeError("llhttp completed a head that has no blank line")
        end += 4
        self._at = end - shift
        head = data[start:end]
        self._last = head
        return head

    def skip(self, body_length: int | None, chunked: bool = False) -> None:
        """The body after the head just taken: its size; or chunked, followed through its
        framing; or None if not known (nothing may follow it)."""
        self._in_body = True
        if chunked:
            self._chunk = _CHUNK_SIZE  # it begins where the head ended: _at stays
        else:
            self._at = -1 if body_length is None else self._at + body_length

    def message_done(self) -> None:
        self._in_body = False
        if self._chunk != _NOT_CHUNKED:
            # llhttp found the end of the chunked body in this read: so must the scan.
            end = self._follow_chunks(self._data, self._at)
            if self._chunk != _NOT_CHUNKED:
                raise RuntimeError("llhttp ended a chunked body where its framing does not")
            self._at = end
        else:
            self.trailers = b""

    def end_of_read(self) -> None:
        size = len(self._data)
        if self._chunk != _NOT_CHUNKED:
            # In a chunked body that goes on in the next read (llhttp accepted this one).
            self._follow_chunks(self._data, self._at)
            self._at = 0
            self._data = b""
            return
        at = self._at
        if at < 0:
            if not self._in_body and not self.lost:
                self._at = 0  # the chunked body ended exactly at the end of the read
        elif at >= size:
            self._at = at - size
        else:
            if self.in_head:
                self._carry += self._data[at:]
            # else only empty lines followed, which llhttp skips between messages
            self._at = 0
        self._data = b""

    def _follow_chunks(self, data: bytes, at: int) -> int:
        """Follow the chunked body through `data` from `at`; return where it ended in
        `data` (its state back to _NOT_CHUNKED), or len(data) if it goes on."""
        size = len(data)
        while at < size:
            state = self._chunk
            if state == _CHUNK_DATA:
                left = self._chunk_left
                if size - at < left:
                    self._chunk_left = left - (size - at)
                    return size
                at += left
                self._chunk = _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                line_end = data.find(b"\n", at)
                if line_end < 0:
                    self._chunk_carry += data[at:]
                    return size
                line = data[at:line_end]
                if self._chunk_carry:
                    line = self._chunk_carry + line
                    self._chunk_carry = b""
                at = line_end + 1
                chunk_size = _chunk_size(line)
                if chunk_size:
                    self._chunk_left = chunk_size + 2  # and its CRLF
                    self._chunk = _CHUNK_DATA
                else:
                    self._chunk = _CHUNK_TRAILERS
            else:
                return self._trailer_section(data, at)
        return size

    def _trailer_section(self, data: bytes, at: int) -> int:
        """Find the end of the trailer section from `at` (CRLF alone when empty, else the
        blank line after the last field line); return where it ends in `data`."""
        carry = self._chunk_carry
        section = carry + data[at:] if carry else data[at:]
        if section[:2] == b"\r\n":
            end = 2
        else:
            found = section.find(_BLANK)
            if found < 0:
                self._chunk_carry = section
                return len(data)
            end = found + 4
        self.trailers = section[:end] if end > 2 else b""
        self._chunk_carry = b""
        self._chunk = _NOT_CHUNKED
        return at + end - len(carry)

    @property
    def carried(self) -> int:
        """Bytes of an incomplete head, chunk size line or trailer section kept from
        earlier reads."""
        return len(self._carry) + len(self._chunk_carry)

    @property
    def in_first_line(self) -> bool:
        """The incomplete head has no complete line yet (its request or status line)."""
        return b"\n" not in self._carry.lstrip(b"\r\n")


def _chunk_size(line: bytes) -> int:
    """The size of a chunk size line llhttp accepted: hex digits, then extensions or CR."""
    end = 0
    size = len(line)
    while end < size and line[end] in _HEX_DIGITS:
        end += 1
    return int(line[:end], 16)


def request_line(head: bytes) -> tuple[bytes, bytes, str, int]:
    """(method, target, version, where the fields start) of a request head."""
    line_end = head.find(b"\r\n")
    parts = head[:line_end].split(b" ")
    if len(parts) != 3:
        parts = [part for part in parts if part]  # llhttp allows runs of spaces
    if len(parts) == 3:
        version = _VERSIONS.get(parts[2])
        if version is None:
            version = parts[2].decode("latin-1")
        return parts[0], parts[1], version, line_end + 2
    if len(parts) == 2:
        return parts[0], parts[1], "0.9", line_end + 2  # no version: HTTP/0.9
    raise ClientProtocolError(400, "malformed request line")


def status_code(head: bytes) -> int:
    """The status code of a response head llhttp accepted: it requires "HTTP/d.d", one
    SP and exactly three digits, so they are bytes 9 to 11 (asking httptools for it is a
    generic call, several times the cost)."""
    return (head[9] - 48) * 100 + (head[10] - 48) * 10 + (head[11] - 48)


def status_line(head: bytes) -> tuple[bytes, str, int]:
    """(reason, version, where the fields start) of a response head."""
    line_end = head.find(b"\r\n")
    version = _VERSIONS.get(head[:8])
    if version is None:
        version = head[:8].decode("latin-1")
    # llhttp allows exactly "VERSION SP 3DIGIT", then SP reason or the line end. (The
    # test matters: mypyc, unlike Python, fails on a slice that ends before it starts.)
    reason = head[13:line_end] if line_end > 13 else b""
    return reason, version, line_end + 2


def fields(head: bytes, start: int, side: str) -> list[Header]:
    """The (name, value) fields of a head, from `start` (after the start line)."""
    found: list[Header] = []
    read_fields(head, start, side, found)
    return found


def read_fields(head: bytes, start: int, side: str, found: list[Header]) -> bool:
    """Append the fields of `head` from `start` to `found`. True when every field line
    is exactly `name + b": " + value`, the form the proxy writes them in: the field
    lines can then be sent on as they are instead of being joined again."""
    end = len(head) - 4  # before the CRLF that ends the last field and the blank line
    if start > end:
        return True
    as_written = True
    for line in head[start:end].split(b"\r\n"):
        colon = _colon_in(line)
        if colon < 0:
            # Cannot happen for a head llhttp accepted; refuse rather than guess.
            if side == "request":
                raise ClientProtocolError(400, "malformed header line")
            raise UpstreamProtocolError("malformed header line in the response")
        value = _value_after(line, colon + 1)
        found.append((line[:colon], value))
        if as_written and (len(line) - len(value) != colon + 2 or line[colon + 1] != 32):
            as_written = False  # no space, or more than one, or a tab after the colon
    return as_written


# Compiled, indexing and slicing bytes are a few instructions each, while a bytes method
# such as find or partition is a generic call costing a few hundred: names are short,
# so looking for the colon byte by byte is cheaper.


def _colon_in(line: bytes) -> int:
    for i in range(len(line)):
        if line[i] == 58:  # ':'
            return i
    return -1


def _value_after(line: bytes, start: int) -> bytes:
    """The value from `start` without its leading SP/HTAB (nearly always exactly one)."""
    size = len(line)
    while start < size and (line[start] == 32 or line[start] == 9):
        start += 1
    return line[start:] if start < size else b""
