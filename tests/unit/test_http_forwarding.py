"""Forwarding headers by trust (ForwardingPolicy), loop detection and the body limit."""

from __future__ import annotations

import httptools
import pytest

from bascule.errors import ClientProtocolError
from bascule.proxy.http_policy import (
    ForwardingPolicy,
    HeadLimits,
    RequestHead,
    RequestMemo,
    check_request_head,
    upstream_request_head,
)

HOST = (b"Host", b"shop.example")
Headers = list[tuple[bytes, bytes]]
CLIENT = "192.0.2.1"
SPOOFED: Headers = [
    HOST,
    (b"X-Forwarded-For", b"203.0.113.9"),
    (b"Forwarded", b'for=203.0.113.9;proto=https;host="bank.example", by=x;proto=https'),
    (b"X-Forwarded-Proto", b"https"),
    (b"X-Forwarded-Host", b"bank.example"),
    (b"X-Real-IP", b"10.9.9.9"),
]


def check(headers: Headers, limits: HeadLimits | None = None, loop_id: bytes = b"") -> RequestHead:
    return check_request_head(b"GET", b"/", "1.1", headers, limits or HeadLimits(), loop_id)


def sent(raw: bytes) -> dict[bytes, list[bytes]]:
    """Every header of a request as a server parses it, by lower-cased name."""
    found: dict[bytes, list[bytes]] = {}

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            found.setdefault(name.lower(), []).append(value)

    httptools.HttpRequestParser(Sink()).feed_data(raw)
    return found


def forward(
    headers: Headers, policy: ForwardingPolicy, client: str = CLIENT
) -> dict[bytes, list[bytes]]:
    trusted = policy.trusts(client)
    return sent(upstream_request_head(check(headers), client, 1, policy=policy, trusted=trusted))


def test_an_untrusted_client_keeps_its_address_path_but_not_its_claims() -> None:
    out = forward(SPOOFED, ForwardingPolicy())
    assert out[b"x-forwarded-for"] == [b"203.0.113.9, 192.0.2.1"]
    # Its Forwarded elements keep only for=; the last element is ours and says proto=http.
    assert out[b"forwarded"] == [b"for=203.0.113.9, for=192.0.2.1;host=shop.example;proto=http"]
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-forwarded-host"] == [b"shop.example"]
    assert out[b"x-real-ip"] == [b"192.0.2.1"]


def test_a_trusted_client_keeps_its_claims_and_our_hop_is_appended() -> None:
    out = forward(SPOOFED, ForwardingPolicy(["192.0.2.0/24"]))
    assert out[b"x-forwarded-for"] == [b"203.0.113.9, 192.0.2.1"]
    assert out[b"forwarded"] == [
        b'for=203.0.113.9;proto=https;host="bank.example", by=x;proto=https, '
        b"for=192.0.2.1;host=shop.example;proto=http"
    ]
    assert out[b"x-forwarded-proto"] == [b"https"]
    assert out[b"x-forwarded-host"] == [b"bank.example"]
    assert out[b"x-real-ip"] == [b"10.9.9.9"]


def test_a_trusted_client_without_claims_gets_ours() -> None:
    out = forward([HOST, (b"X-Forwarded-For", b"203.0.113.9")], ForwardingPolicy(["192.0.2.1"]))
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-real-ip"] == [b"192.0.2.1"]


@pytest.mark.parametrize("networks", [[], ["192.0.2.0/24"]], ids=["untrusted", "trusted"])
def test_replace_drops_everything_the_client_sent(networks: list[str]) -> None:
    out = forward(SPOOFED, ForwardingPolicy(networks, replace=True))
    assert out[b"x-forwarded-for"] == [b"192.0.2.1"]
    assert out[b"forwarded"] == [b"for=192.0.2.1;host=shop.example;proto=http"]
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-forwarded-host"] == [b"shop.example"]
    assert out[b"x-real-ip"] == [b"192.0.2.1"]


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (b'for="[2001:db8::1]:4711";proto=https', b'for="[2001:db8::1]:4711"'),
        (b'proto=https;for="a,b;c", for=_hidden', b'for="a,b;c", for=_hidden'),
        (b"by=203.0.113.1;host=evil", b""),  # no for=: nothing of it is passed on
        (b"for=1.2.3.4;proto=https junk", b""),  # does not parse: dropped whole
        (b"for=1.2.3.4 ;  , ,for=5.6.7.8", b"for=1.2.3.4, for=5.6.7.8"),
    ],
)
def test_untrusted_forwarded_elements_keep_only_for(value: bytes, kept: bytes) -> None:
    out = forward([HOST, (b"Forwarded", value)], ForwardingPolicy())
    ours = b"for=192.0.2.1;host=shop.example;proto=http"
    assert out[b"forwarded"] == [kept + b", " + ours if kept else ours]


@pytest.mark.parametrize(
    ("client", "trusted"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # an IPv4 client of a dual-stack listener
        ("2001:db8::5", True),
        ("11.0.0.1", False),
        ("2001:db9::5", False),
        ("not-an-ip", False),
    ],
)
def test_trust_by_network(client: str, trusted: bool) -> None:
    assert ForwardingPolicy(["10.0.0.0/8", "2001:db8::/32"]).trusts(client) is trusted


def test_nobody_is_trusted_without_networks() -> None:
    assert ForwardingPolicy().trusts("127.0.0.1") is False


def test_lines_for_requests_without_forwarding_headers_are_remembered_per_client_and_host() -> None:
    policy = ForwardingPolicy(instance=b"abc")
    for client, host in [("192.0.2.1", b"a.example"), ("192.0.2.2", b"a.example")] * 2:
        out = sent(upstream_request_head(check([(b"Host", host)]), client, 1, policy=policy))
        assert out[b"x-forwarded-for"] == [client.encode()]
        assert out[b"x-real-ip"] == [client.encode()]
        assert out[b"x-bascule-loop"] == [b"abc"]


def test_request_memo_decides_trust_once_per_connection() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Proto: https\r\n\r\n"
    trusted = RequestMemo("10.0.0.7", 1, ForwardingPolicy(["10.0.0.0/8"]))
    untrusted = RequestMemo("192.0.2.7", 1, ForwardingPolicy(["10.0.0.0/8"]))
    for _ in range(2):  # the second time from the memo
        assert sent(trusted.check(raw, HeadLimits())[1])[b"x-forwarded-proto"] == [b"https"]
        assert sent(untrusted.check(raw, HeadLimits())[1])[b"x-forwarded-proto"] == [b"http"]


# -- loops --------------------------------------------------------------------------------


def test_a_request_carrying_our_own_loop_mark_is_refused_with_508() -> None:
    with pytest.raises(ClientProtocolError) as refused:
        check([HOST, (b"X-Bascule-Loop", b"other"), (b"x-bascule-loop", b"me")], loop_id=b"me")
    assert refused.value.status == 508
    assert "loop detected" in refused.value.reason


def test_another_instances_loop_mark_is_passed_on_with_ours_added() -> None:
    head = check([HOST, (b"X-Bascule-Loop", b"other")], loop_id=b"me")
    out = sent(upstream_request_head(head, CLIENT, 1, policy=ForwardingPolicy(instance=b"me")))
    assert out[b"x-bascule-loop"] == [b"other", b"me"]


def test_replace_never_drops_loop_marks() -> None:
    # Dropping another instance's mark would hide a loop through both instances.
    head = check([HOST, (b"X-Bascule-Loop", b"other"), (b"X-Forwarded-For", b"1.2.3.4")])
    policy = ForwardingPolicy(replace=True, instance=b"me")
    out = sent(upstream_request_head(head, CLIENT, 1, policy=policy))
    assert out[b"x-bascule-loop"] == [b"other", b"me"]


def test_without_an_instance_id_there_is_no_loop_mark() -> None:
    out = sent(upstream_request_head(check([HOST]), CLIENT, 1))
    assert b"x-bascule-loop" not in out


# -- request body limit ----------------------------------------------------------------------


def test_content_length_over_the_body_limit_is_refused_with_413() -> None:
    limits = HeadLimits(max_request_body=1000)
    assert check([HOST, (b"Content-Length", b"1000")], limits).content_length == 1000
    with pytest.raises(ClientProtocolError) as refused:
        check([HOST, (b"Content-Length", b"1001")], limits)
    assert refused.value.status == 413
    assert "max_request_body" in refused.value.reason


def test_no_body_limit_by_default_and_chunked_bodies_are_counted_by_the_proxy() -> None:
    assert check([HOST, (b"Content-Length", b"%d" % 2**40)]).content_length == 2**40
    limits = HeadLimits(max_request_body=10)
    assert check([HOST, (b"Transfer-Encoding", b"chunked")], limits).chunked


OTHER_CLAIMS: Headers = [
    HOST,
    (b"X-Forwarded-Port", b"443"),
    (b"X-Forwarded-Ssl", b"on"),
    (b"X-Forwarded-Scheme", b"https"),
    (b"Front-End-Https", b"on"),
    (b"X-Forwarded-Prefix", b"/admin"),
    (b"X-Custom", b"kept"),
]
OTHER_NAMES = [b"x-forwarded-port", b"x-forwarded-ssl", b"x-forwarded-scheme"]
OTHER_NAMES += [b"front-end-https", b"x-forwarded-prefix"]


def test_other_claims_frameworks_believe_pass_only_from_trusted_networks() -> None:
    untrusted = forward(OTHER_CLAIMS, ForwardingPolicy())
    assert [name for name in OTHER_NAMES if name in untrusted] == []
    assert untrusted[b"x-custom"] == [b"kept"]
    trusted = forward(OTHER_CLAIMS, ForwardingPolicy(networks=["192.0.2.0/24"]))
    assert [trusted.get(name) for name in OTHER_NAMES] == [
        [b"443"],
        [b"on"],
        [b"https"],
        [b"on"],
        [b"/admin"],
    ]
    replaced = forward(OTHER_CLAIMS, ForwardingPolicy(networks=["192.0.2.0/24"], replace=True))
    assert [name for name in OTHER_NAMES if name in replaced] == []
