"""The HTTP desync corpus through the same path the proxy uses: llhttp (httptools), the
head taken whole by a HeadReader, then the policy through a RequestMemo.

Severe cases must be refused and Compliant ones must pass with their headers unchanged.
Ambiguous and Acceptable cases may go either way; the decisions below are explicit so a
change in behaviour shows up as a failing test, and a summary of outcomes is printed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import httptools
import pytest

from bascule.errors import ClientProtocolError
from bascule.proxy.heads import HeadReader
from bascule.proxy.http_policy import HeadLimits, RequestHead, RequestMemo, check_request_head
from bascule.proxy.http_policy import upstream_request_head as rebuild
from desync_corpus import Case, load_cases, to_raw_request

CASES = load_cases()
CLIENT_IP = "192.0.2.10"

# Compliant cases the proxy refuses on purpose: the Transfer-Encoding rule is stricter
# than RFC 9112 by design (see http_policy._framing) and strict llhttp refuses the two
# targets. Each is asserted to be refused, so this list cannot silently go stale.
COMPLIANT_BUT_REFUSED = {
    "rfc-compliant: Different Transfer-Encoding headers": "policy: TE must be one 'chunked'",
    "rfc-compliant: Different Transfer-Encoding headers combined": "policy: TE coding list",
    "rfc-compliant: Transfer-Encoding with a param: chunked;custom_param": "policy: TE list",
    "rfc-compliant: Empty URI": "llhttp: an empty request-target is not HTTP/1.1",
    "rfc-compliant: International in URI": "llhttp: raw non-ASCII target (not percent-encoded)",
}
# Ambiguous cases we forward; every other Ambiguous case must be refused.
AMBIGUOUS_BUT_ACCEPTED = {
    # RFC 9112 6.3 frames a GET/HEAD body like any other and we re-send it with our own
    # Content-Length or chunked framing; APIs (Elasticsearch, GraphQL GET) rely on it.
    "ambiguous: Get with a body and Content-Length": "body framing is unambiguous",
    "ambiguous: Get with a body and Transfer-Encoding": "body framing is unambiguous",
    "ambiguous: Head with a body and Content-Length": "body framing is unambiguous",
    "ambiguous: Head with a body and Transfer-Encoding": "body framing is unambiguous",
    # No parser we know folds repeated '-' or '_' into one: these are plain custom headers.
    "ambiguous: Transfer-Encoding with multiple hyphens": "not a framing header anywhere",
    "ambiguous: Transfer-Encoding with multiple delimiters": "not a framing header anywhere",
}
# Acceptable cases we forward; the others carry CTLs or non-token names (refused by
# strict llhttp) or ask for HTTP/0.9 or 1.2, which we do not speak.
ACCEPTABLE_AND_ACCEPTED = {"acceptable: Get with a body and Content-Length:0"}


@dataclass
class Outcome:
    """What the proxy would do with one raw request."""

    head: RequestHead | None = None
    status: int | None = None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.head is not None


class _Collector:
    """The minimal httptools protocol object, with the client connection's callbacks:
    the head is taken whole, then checked."""

    def __init__(self) -> None:
        self.heads = HeadReader()
        self.memo = RequestMemo(CLIENT_IP, 4000)
        self.head: RequestHead | None = None

    def on_message_begin(self) -> None:
        self.heads.message_begun()

    def on_headers_complete(self) -> None:
        self.head, _wire = self.memo.check(self.heads.take(), HeadLimits())
        self.heads.skip(self.head.body_length, self.head.chunked)

    def on_message_complete(self) -> None:
        self.heads.message_done()


def run_through_proxy_path(raw: bytes, piece: int = 0) -> Outcome:
    """Parse like the proxy does; llhttp errors count as a 400 refusal.

    With `piece`, the bytes arrive in pieces of that size, as from a slow network.
    """
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    try:
        for start in range(0, len(raw), piece or len(raw) or 1):
            data = raw[start : start + (piece or len(raw))]
            collector.heads.read(data)
            parser.feed_data(data)
            collector.heads.end_of_read()
    except httptools.HttpParserUpgrade:
        pass  # raised after on_headers_complete: the policy has already ruled
    except httptools.HttpParserError as error:
        # httptools re-raises a callback's exception as HttpParserCallbackError with the
        # original as __context__.
        cause = error.__context__
        if isinstance(cause, ClientProtocolError):
            return Outcome(status=cause.status, reason=cause.reason)
        return Outcome(status=400, reason=f"llhttp: {error}")
    if collector.head is None:
        return Outcome(reason="incomplete head")
    return Outcome(head=collector.head)


OUTCOMES = {id(case): run_through_proxy_path(to_raw_request(case)) for case in CASES}


def _cases(tier: str) -> list[Case]:
    return [case for case in CASES if case.tier == tier]


def _ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def test_the_corpus_has_cases_of_every_tier() -> None:
    assert set(Counter(case.tier for case in CASES)) == {
        "Compliant",
        "Acceptable",
        "Ambiguous",
        "Severe",
    }


@pytest.mark.parametrize("case", _cases("Severe"), ids=_ids(_cases("Severe")))
def test_severe_requests_are_refused_with_400(case: Case) -> None:
    outcome = OUTCOMES[id(case)]
    assert not outcome.accepted
    assert outcome.status == 400


COMPLIANT_EXPECTED_TO_PASS = [c for c in _cases("Compliant") if c.id not in COMPLIANT_BUT_REFUSED]


@pytest.mark.parametrize("case", COMPLIANT_EXPECTED_TO_PASS, ids=_ids(COMPLIANT_EXPECTED_TO_PASS))
def test_compliant_requests_pass_with_headers_unchanged(case: Case) -> None:
    outcome = OUTCOMES[id(case)]
    assert outcome.head is not None, outcome.reason
    forwarded = _parse_back(rebuild(outcome.head, CLIENT_IP, 40000))
    hop_by_hop = {b"connection", b"keep-alive", b"te", b"upgrade"}
    framing = {b"content-length", b"transfer-encoding"}
    added = {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
    }
    # llhttp strips leading whitespace from values (it is OWS, not part of the value).
    sent = [(b"Host", b"example.com")] + [
        (name, value.lstrip(b" \t"))
        for name, value in case.headers
        if name.lower() not in hop_by_hop | framing | added
    ]
    assert [(n, v) for n, v in forwarded if n.lower() not in framing | added] == sent
    framing_sent = [(n.lower(), v.lower()) for n, v in case.headers if n.lower() in framing]
    assert [(n.lower(), v.lower()) for n, v in forwarded if n.lower() in framing] == framing_sent


@pytest.mark.parametrize("name", sorted(COMPLIANT_BUT_REFUSED))
def test_documented_compliant_exceptions_are_still_refused(name: str) -> None:
    [case] = [case for case in CASES if case.id == name]
    assert not OUTCOMES[id(case)].accepted, "now accepted: remove it from COMPLIANT_BUT_REFUSED"


@pytest.mark.parametrize("case", _cases("Ambiguous"), ids=_ids(_cases("Ambiguous")))
def test_ambiguous_requests_are_refused_unless_listed(case: Case) -> None:
    outcome = OUTCOMES[id(case)]
    assert outcome.accepted == (case.id in AMBIGUOUS_BUT_ACCEPTED), outcome.reason
    if not outcome.accepted:
        assert outcome.status == 400 or outcome.status == 505


@pytest.mark.parametrize("case", _cases("Acceptable"), ids=_ids(_cases("Acceptable")))
def test_acceptable_requests_follow_the_decision_table(case: Case) -> None:
    outcome = OUTCOMES[id(case)]
    assert outcome.accepted == (case.id in ACCEPTABLE_AND_ACCEPTED), outcome.reason


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_outcome_does_not_depend_on_how_the_bytes_arrive(case: Case) -> None:
    whole = OUTCOMES[id(case)]
    split = run_through_proxy_path(to_raw_request(case), piece=7)
    assert (split.accepted, split.status) == (whole.accepted, whole.status)
    if whole.head is not None and split.head is not None:
        assert split.head.headers == whole.head.headers


def test_raw_requests_are_complete_messages_when_framing_is_valid() -> None:
    [case] = [c for c in CASES if c.id == "rfc-compliant: Valid Content-Length"]
    raw = to_raw_request(case)
    assert raw.startswith(b"PUT /foo/bar HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1000\r\n")
    assert raw.endswith(b"\r\n\r\n" + b"x" * 1000)
    [chunked] = [c for c in CASES if c.id == "rfc-compliant: Valid Transfer-Encoding (chunked)"]
    assert to_raw_request(chunked).endswith(b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


def test_a_case_with_its_own_host_gets_no_second_one() -> None:
    [case] = [c for c in CASES if c.id == "severe: Bad method"]
    assert to_raw_request(case).count(b"Host:") == 1


def test_print_outcome_summary(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(
        (case.tier, "accepted" if OUTCOMES[id(case)].accepted else "refused") for case in CASES
    )
    lines = [
        f"  {tier:<10} accepted {counts[tier, 'accepted']:>3}  refused {counts[tier, 'refused']:>3}"
        for tier in ("Compliant", "Acceptable", "Ambiguous", "Severe")
    ]
    with capsys.disabled():
        print("\nHTTP desync corpus through llhttp + HeadReader + the request policy:")
        print("\n".join(lines))
    assert counts["Severe", "accepted"] == 0


def _parse_back(raw: bytes) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            headers.append((name, value))

    httptools.HttpRequestParser(Sink()).feed_data(raw)
    return headers


@pytest.mark.parametrize("case", _cases("Severe"), ids=_ids(_cases("Severe")))
def test_the_policy_alone_refuses_severe_requests(case: Case) -> None:
    """Defence in depth: without llhttp in front, check_request_head still says no."""
    version = case.version.removeprefix(b"HTTP/").decode()
    headers = [(name, value.lstrip(b" \t")) for name, value in case.headers]
    if not any(name.lower() == b"host" for name, _ in headers):
        headers.insert(0, (b"Host", b"example.com"))
    with pytest.raises(ClientProtocolError) as refused:
        check_request_head(case.method, case.uri, version, headers, HeadLimits())
    assert refused.value.status == 400
