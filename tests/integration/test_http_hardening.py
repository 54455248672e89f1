"""The L7 proxy against hostile or mistaken traffic, end to end with real sockets: the
request body limit, the keep-alive idle timeout, forwarding headers by trust, and loops."""

from __future__ import annotations

import asyncio
import logging
import textwrap

import pytest

from backends import Backend, Request
from client import Client, get, request
from harness import free_port, http_config, running


async def test_content_length_over_max_request_body_gets_413_and_never_reaches_a_server() -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, frontend_extra="http: {max_request_body: 1k}")
    async with running(cfg):
        body = b"x" * 1025
        post = b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
        resp = await request(port, post + body)
        assert resp is not None and resp.status == 413
        assert b"max_request_body" in resp.body
        small = b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024
        resp = await request(port, small)
        assert resp is not None and resp.status == 200
    assert [r.body for r in b.requests] == [b"x" * 1024]
    assert b.connection_count == 1


async def test_chunked_body_over_the_limit_gets_413_and_the_server_connection_is_not_reused() -> (
    None
):
    b = await Backend("s1").start()  # answers once the whole request is in: never, here
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, frontend_extra="http: {max_request_body: 1k}")
    async with running(cfg):
        client = await Client.connect(port)
        client.send(b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # 1,536 bytes in all, forwarded as they come until the limit
            client.send(b"200\r\n" + b"x" * 512 + b"\r\n")
            await asyncio.sleep(0.05)
        (resp,) = await client.read(timeout=3)
        assert resp.status == 413
        assert await client.wait_closed(timeout=3)
        client.close()
        for _ in range(100):  # the server's half-sent request is cut, not left pooled
            if not b.connections:
                break
            await asyncio.sleep(0.02)
        assert not b.connections
        again = await request(port, get())
        assert again is not None and again.status == 200
    assert b.connection_count == 2


@pytest.mark.parametrize(
    "timeouts",
    [
        "{client: 30s, http_request: 10s, http_keep_alive: 300ms}",
        "{client: 30s, http_request: 300ms}",  # unset: http_request, like HAProxy
    ],
    ids=["http_keep_alive", "defaults to http_request"],
)
async def test_an_idle_keep_alive_connection_is_closed_long_before_timeouts_client(
    timeouts: str,
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port}, frontend_extra=f"timeouts: {timeouts}")):
        client = await Client.connect(port)
        client.send(get())
        assert (await client.read())[0].status == 200
        assert await client.wait_closed(timeout=3)  # the 30 s client timeout did not apply
        client.close()


async def test_a_request_after_a_pause_shorter_than_keep_alive_is_served() -> None:
    b = await Backend("s1").start()
    port = free_port()
    timeouts = "timeouts: {client: 300ms, http_request: 10s, http_keep_alive: 2s}"
    async with running(http_config(port, {"s1": b.port}, frontend_extra=timeouts)):
        client = await Client.connect(port)
        client.send(get())
        assert (await client.read())[0].status == 200
        await asyncio.sleep(0.6)  # longer than timeouts.client, which no longer ends idling
        client.send(get())
        assert (await client.read())[0].status == 200
        client.close()


SPOOFING = (
    "X-Forwarded-For: 203.0.113.9\r\n"
    "Forwarded: for=203.0.113.9;proto=https;host=bank.example\r\n"
    "X-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: bank.example\r\n"
    "X-Real-IP: 10.9.9.9\r\n"
)


async def forwarded_as(frontend_extra: str) -> Request:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port}, frontend_extra=frontend_extra)):
        resp = await request(port, get(host="shop.example", extra=SPOOFING))
        assert resp is not None and resp.status == 200
    return b.requests[0]


async def test_an_untrusted_clients_proto_host_and_real_ip_claims_are_replaced() -> None:
    seen = await forwarded_as("")
    assert seen.header("x-forwarded-for") == b"203.0.113.9, 127.0.0.1"
    # A backend reading the first Forwarded element no longer finds proto=https.
    assert seen.header("forwarded") == (
        b"for=203.0.113.9, for=127.0.0.1;host=shop.example;proto=http"
    )
    assert seen.header("x-forwarded-proto") == b"http"
    assert seen.header("x-forwarded-host") == b"shop.example"
    assert seen.header("x-real-ip") == b"127.0.0.1"


async def test_a_trusted_clients_claims_are_kept() -> None:
    seen = await forwarded_as('trusted_networks: ["127.0.0.0/8"]')
    assert seen.header("x-forwarded-for") == b"203.0.113.9, 127.0.0.1"
    ours = b"for=127.0.0.1;host=shop.example;proto=http"
    assert seen.header("forwarded") == b"for=203.0.113.9;proto=https;host=bank.example, " + ours
    assert seen.header("x-forwarded-proto") == b"https"
    assert seen.header("x-real-ip") == b"10.9.9.9"


async def test_forwarded_replace_drops_what_even_a_trusted_client_sent() -> None:
    seen = await forwarded_as('trusted_networks: ["127.0.0.0/8"]\nforwarded: replace')
    assert seen.header("x-forwarded-for") == b"127.0.0.1"
    assert seen.header("forwarded") == b"for=127.0.0.1;host=shop.example;proto=http"
    assert seen.header("x-forwarded-proto") == b"http"
    assert seen.header("x-real-ip") == b"127.0.0.1"


async def test_a_frontend_routed_to_itself_answers_508_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    caplog.set_level(logging.INFO, logger="bascule.http")
    async with running(http_config(port, {"self": port})):
        resp = await request(port, get(), timeout=5)
    assert resp is not None and resp.status == 508
    assert b"loop detected" in resp.body
    assert any("loop detected" in record.getMessage() for record in caplog.records)


def two_frontends(first: int, second: int, second_sends_to: int) -> str:
    """Frontend "first" sends to frontend "second", which sends to port `second_sends_to`."""
    return textwrap.dedent(
        f"""
        frontends:
          - {{name: first, bind: "127.0.0.1:{first}", default_backend: to_second}}
          - {{name: second, bind: "127.0.0.1:{second}", default_backend: onwards}}
        backends:
          - name: to_second
            servers: [{{name: second, address: 127.0.0.1, port: {second}}}]
          - name: onwards
            servers: [{{name: next, address: 127.0.0.1, port: {second_sends_to}}}]
        """
    )


async def test_two_frontends_routed_to_each_other_answer_508() -> None:
    a, b = free_port(), free_port()
    async with running(two_frontends(a, b, second_sends_to=a)):
        resp = await request(a, get(), timeout=5)
    assert resp is not None and resp.status == 508


async def test_a_frontend_forwarding_to_another_frontend_is_not_a_loop() -> None:
    b = await Backend("s1").start()
    outer, inner = free_port(), free_port()
    async with running(two_frontends(outer, inner, second_sends_to=b.port)):
        resp = await request(outer, get(), timeout=5)
    assert resp is not None and resp.status == 200
    marks = [value for name, value in b.requests[0].headers if name.lower() == b"x-bascule-loop"]
    assert len(marks) == 2 and marks[0] != marks[1]  # one per frontend passed
