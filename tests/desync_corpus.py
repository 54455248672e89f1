"""The aws/http-desync-guardian request corpus, as data for Bascule's tests.

Each YAML case is a method, URI, version and header list graded Compliant, Acceptable,
Ambiguous or Severe (see the corpus README). `load_cases()` reads them from the shared
corpora directory at test time (the corpus is not copied into the project) and
`to_raw_request()` turns one into the bytes a client would send, so the same cases can be
run through the policy alone (tests/unit/test_desync_corpus.py) or through the real proxy.
Import it as `desync_corpus`: tests/conftest.py puts tests/ on sys.path.

Calling `load_cases()` while pytest collects a module skips that module when the corpus is
not there (and fails it in CI: `prerequisites.missing`). Set BASCULE_DESYNC_CORPUS to read it
from another directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from prerequisites import missing

CORPUS_DIR = Path(
    os.environ.get(
        "BASCULE_DESYNC_CORPUS",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "http-desync-guardian",
    )
).resolve()
TIERS = ("Compliant", "Acceptable", "Ambiguous", "Severe")
MAX_BODY = 1 << 20  # Content-Length values above this get no body (they are all attacks)


@dataclass(frozen=True)
class Case:
    """One corpus case; `headers` hold raw bytes exactly as the case spells them."""

    name: str
    file: str
    method: bytes
    uri: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    tier: str
    reason: str = ""

    @property
    def id(self) -> str:
        """A readable pytest id: file stem and case name."""
        return f"{Path(self.file).stem}: {self.name}"


def load_cases() -> list[Case]:
    """Every case of every YAML file in the corpus, in file order."""
    if not CORPUS_DIR.is_dir():
        missing(
            f"HTTP desync corpus not found at {CORPUS_DIR} (expected the shared corpora "
            "checkout beside the project, or set BASCULE_DESYNC_CORPUS)"
        )
    cases: list[Case] = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            cases.append(_case(entry, path.name))
    return cases


def _case(entry: dict[str, object], file: str) -> Case:
    expected = entry["expected"]
    assert isinstance(expected, dict), f"{file}: case {entry.get('name')!r} has no expected"
    raw_headers = entry.get("headers") or []
    assert isinstance(raw_headers, list)
    return Case(
        name=str(entry["name"]),
        file=file,
        method=_to_bytes(entry["method"]),
        uri=_to_bytes(entry["uri"]),
        version=_to_bytes(entry["version"]),
        headers=[(_to_bytes(h["name"]), _to_bytes(h["value"])) for h in raw_headers],
        tier=str(expected["tier"]),
        reason=str(expected.get("reason", "")),
    )


def _to_bytes(value: object) -> bytes:
    """YAML text to wire bytes.

    The cases write single bytes as escapes ("\\x85", "\\xa0", "\\x00"), which YAML turns
    into code points below 256: those become that one byte. Real non-Latin-1 text (the
    Cyrillic URI, a long s in a name) becomes UTF-8, as a client would send it. Unquoted numbers
    (`value: 1000`) are read by YAML as ints and are sent as their decimal text.
    """
    text = "" if value is None else str(value)
    return b"".join(bytes((ord(ch),)) if ord(ch) < 256 else ch.encode("utf-8") for ch in text)


def to_raw_request(case: Case, host: bytes = b"example.com") -> bytes:
    """The request as a client would put it on the wire, complete with a small body."""
    # Host is mandatory in HTTP/1.1 and Bascule rejects its absence; the corpus leaves it
    # out of most cases because it is not what they test, so add one unless they have it.
    headers = list(case.headers)
    if not any(name.lower() == b"host" for name, _ in headers):
        headers.insert(0, (b"Host", host))
    if case.version:
        request_line = case.method + b" " + case.uri + b" " + case.version + b"\r\n"
    else:
        request_line = case.method + b" " + case.uri + b"\r\n"  # HTTP/0.9 has no version
    head = request_line + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + _body(headers)


def _body(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A body consistent with the framing headers, so well-framed requests are complete.

    Chunked (final coding "chunked") gets the empty last chunk; a single all-digit
    Content-Length gets that many bytes. Anything else is ambiguous on purpose: no body.
    """
    codings = [
        coding.split(b";")[0].strip(b" \t").lower()
        for name, value in headers
        if name.lower() == b"transfer-encoding"
        for coding in value.split(b",")
    ]
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    if codings:
        return b"0\r\n\r\n" if codings[-1] == b"chunked" and not lengths else b""
    if len(lengths) == 1 and lengths[0].isdigit() and int(lengths[0]) <= MAX_BODY:
        return b"x" * int(lengths[0])
    return b""
