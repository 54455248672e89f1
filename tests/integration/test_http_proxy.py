"""The L7 proxy end to end: real client sockets, real Bascule, real backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from backends import Backend, Request, hang, ok_response, raw, reset
from client import Client, get, request
from harness import free_port, http_config, running


async def backends(*names: str) -> dict[str, Backend]:
    return {n: await Backend(n).start() for n in names}


def ports(bs: dict[str, Backend]) -> dict[str, int]:
    return {n: b.port for n, b in bs.items()}


async def test_get_is_proxied_with_forwarded_headers_and_hop_by_hop_removed() -> None:
    bs = await backends("s1")
    port = free_port()
    async with running(http_config(port, ports(bs))):
        resp = await request(
            port,
            get(
                "/a?b=1",
                host="shop.example",
                extra="Connection: keep-alive, X-Secret\r\n"
                "X-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
                "X-Forwarded-For: 203.0.113.9\r\n",
            ),
        )
    assert resp is not None and resp.status == 200 and resp.body == b"s1\n"
    seen = bs["s1"].requests[0]
    assert seen.target == b"/a?b=1"
    assert seen.header("host") == b"shop.example"
    assert seen.header("x-forwarded-for") == b"203.0.113.9, 127.0.0.1"
    assert seen.header("x-forwarded-proto") == b"http"
    assert seen.header("x-forwarded-host") == b"shop.example"
    assert b"for=127.0.0.1" in (seen.header("forwarded") or b"")
    for gone in ("x-secret", "keep-alive", "connection"):
        assert seen.header(gone) is None, gone


async def test_keep_alive_on_both_sides_reuses_one_upstream_connection() -> None:
    bs = await backends("s1")
    port = free_port()
    async with running(http_config(port, ports(bs))):
        client = await Client.connect(port)
        for _ in range(5):
            client.send(get())
            (resp,) = await client.read()
            assert resp.status == 200
        client.close()
    assert len(bs["s1"].requests) == 5
    assert bs["s1"].connection_count == 1


async def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(req: Request, transport: asyncio.Transport) -> None:
        delay = 0.2 if req.target == b"/1" else 0.0
        await asyncio.sleep(delay)
        body = req.target
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))

    b1 = await Backend("s1", slow_first).start()
    b2 = await Backend("s2", slow_first).start()
    port = free_port()
    async with running(http_config(port, {"s1": b1.port, "s2": b2.port})):
        client = await Client.connect(port)
        client.send(get("/1") + get("/2") + get("/3"))
        got = await client.read(3)
        client.close()
    assert [r.body for r in got] == [b"/1", b"/2", b"/3"]


async def test_request_bodies_stream_with_content_length_and_chunked() -> None:
    def echo(req: Request, transport: asyncio.Transport) -> None:
        te = req.header("transfer-encoding") or b"-"
        body = b"%b|%b" % (te, req.body)
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))

    b = await Backend("s1", echo).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        big = b"x" * 300_000
        post = b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(big)
        resp = await request(port, post + big)
        assert resp is not None and resp.body == b"-|" + big
        chunked = (
            b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        resp = await request(port, chunked)
        assert resp is not None and resp.body == b"chunked|hello world"


async def test_response_framings_reach_the_client_intact() -> None:
    payload = bytes(range(256)) * 8000  # 2 MB
    responders = {
        "length": raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload)),
        "chunked": raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%b\r\n0\r\n\r\n" % (len(payload), payload)
        ),
        "close": raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload, close=True),
    }
    for kind, responder in responders.items():
        b = await Backend(kind, responder).start()
        port = free_port()
        async with running(http_config(port, {"s1": b.port})):
            client = await Client.connect(port)
            client.send(get())
            (resp,) = await client.read(timeout=10)
            assert resp.body == payload, kind
            client.send(get())  # the client connection is still usable
            (again,) = await client.read(timeout=10)
            assert again.body == payload, kind
            client.close()
        await b.stop()


async def test_head_response_has_no_body_and_connection_stays_usable() -> None:
    def respond(req: Request, transport: asyncio.Transport) -> None:
        if req.method == b"HEAD":
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        else:
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    b = await Backend("s1", respond).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        client.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        # httptools cannot know the request was HEAD: read raw bytes instead.
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Content-Length: 1234" in head
        client.send(get())
        rest = await asyncio.wait_for(client.reader.readuntil(b"ok"), 5)
        assert rest.startswith(b"HTTP/1.1 200")
        client.close()
    assert b.connection_count == 1


async def test_backend_killed_mid_traffic_loses_no_idempotent_request() -> None:
    bs = await backends("s1", "s2", "s3")
    port = free_port()
    cfg = http_config(
        port,
        ports(bs),
        backend_extra="""
        retries: 3
        passive: {max_fails: 1, fail_timeout: 30s}
    """,
    )
    results: list[int] = []

    async def worker(n: int) -> None:
        client = await Client.connect(port)
        for _ in range(n):
            client.send(get())
            got = await client.read()
            if not got:  # connection closed by proxy: reconnect, count as failure
                results.append(0)
                client = await Client.connect(port)
                continue
            results.append(got[0].status)
            await asyncio.sleep(0.002)
        client.close()

    async with running(cfg):
        workers = [asyncio.create_task(worker(150)) for _ in range(8)]
        await asyncio.sleep(0.2)
        await bs["s2"].stop(abort=True)  # listener closed and live connections reset
        await asyncio.gather(*workers)
    assert len(results) == 1200
    assert set(results) == {200}


async def test_refused_server_is_retried_elsewhere_and_all_down_gives_503() -> None:
    live = await Backend("live").start()
    dead_port = free_port()  # nothing listens there
    port = free_port()
    cfg = http_config(
        port,
        {"dead": dead_port, "live": live.port},
        backend_extra="passive: {max_fails: 0, fail_timeout: 1s}",
    )
    async with running(cfg):
        for _ in range(6):
            resp = await request(port, get())
            assert resp is not None and resp.status == 200
    port2 = free_port()
    async with running(http_config(port2, {"dead": dead_port})):
        resp = await request(port2, get())
    assert resp is not None and resp.status == 503
    assert b"503" in resp.body and b"be" in resp.body
    assert resp.header("connection") == b"close"


async def test_hanging_server_gives_504_after_server_timeout() -> None:
    b = await Backend("slow", hang).start()
    port = free_port()
    cfg = http_config(
        port, {"slow": b.port}, backend_extra="timeouts: {connect: 1s, server: 300ms}"
    )
    async with running(cfg):
        loop = asyncio.get_running_loop()
        started = loop.time()
        resp = await request(port, get(), timeout=5)
        elapsed = loop.time() - started
    assert resp is not None and resp.status == 504
    assert b"timeouts.server" in resp.body
    assert elapsed < 3


async def test_reset_before_response_retries_get_but_never_replays_post() -> None:
    flaky = await Backend("flaky", reset).start()
    good = await Backend("good").start()
    port = free_port()
    cfg = http_config(
        port,
        {"flaky": flaky.port, "good": good.port},
        backend_extra="algorithm: first\npassive: {max_fails: 0, fail_timeout: 1s}",
    )
    async with running(cfg):
        resp = await request(port, get())
        assert resp is not None and resp.status == 200 and resp.body == b"good\n"
        post = b"POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        resp = await request(port, post)
    assert resp is not None and resp.status == 502
    assert [r.method for r in good.requests] == [b"GET"]  # the POST was not replayed
    assert [r.method for r in flaky.requests] == [b"GET", b"POST"]


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 100_000,
    ],
)
async def test_malformed_upstream_response_gives_502(bad: bytes) -> None:
    b = await Backend("bad", raw(bad)).start()
    port = free_port()
    async with running(http_config(port, {"bad": b.port})):
        resp = await request(port, get())
    assert resp is not None and resp.status == 502


MALFORMED = [
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "duplicate CL",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    ("malformed CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\nabc", 400),
    ("TE not chunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("bare LF", b"GET / HTTP/1.1\nHost: h\n\n", 400),
    ("bare CR in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (
        "header section too large",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
        431,
    ),
    (
        "too many headers",
        b"GET / HTTP/1.1\r\nHost: h\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(120))
        + b"\r\n",
        431,
    ),
    ("header that never ends", b"GET / HTTP/1.1\r\nHost: h\r\nX-Endless: " + b"a" * 100_000, 431),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
    ("request line that never ends", b"GET /" + b"a" * 60_000, 414),
    ("RTSP version (llhttp accepts it)", b"GET / RTSP/1.0\r\nHost: h\r\n\r\n", 505),
    ("Host port out of range", b"GET / HTTP/1.1\r\nHost: example.com:99999999\r\n\r\n", 400),
    ("Host port 65536", b"GET / HTTP/1.1\r\nHost: example.com:65536\r\n\r\n", 400),
    ("authority port out of range", b"GET http://h:70000/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
]


@pytest.mark.parametrize(("name", "data", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_request_is_rejected_and_never_forwarded(
    name: str, data: bytes, expected: int
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        client.send(data)
        got = await client.read()
        assert got and got[0].status == expected, name
        assert await client.wait_closed(), "connection must be closed after a rejection"
        client.close()
    assert b.requests == [] and b.connection_count == 0


async def test_routes_by_host_and_path_prefix() -> None:
    bs = await backends("web", "api", "static")
    port = free_port()
    cfg = f"""
    frontends:
      - name: fe
        bind: "127.0.0.1:{port}"
        default_backend: web
        routes:
          - {{host: api.example.com, backend: api}}
          - {{path_prefix: /static/, backend: static}}
    backends:
      - name: web
        servers: [{{name: web, address: 127.0.0.1, port: {bs["web"].port}}}]
      - name: api
        servers: [{{name: api, address: 127.0.0.1, port: {bs["api"].port}}}]
      - name: static
        servers: [{{name: static, address: 127.0.0.1, port: {bs["static"].port}}}]
    """
    async with running(cfg):
        cases = [
            (get("/v1", host="API.example.com:8080"), b"api\n"),
            (get("/static/x.css", host="www.example.com"), b"static\n"),
            (get("/", host="www.example.com"), b"web\n"),
        ]
        for data, body in cases:
            resp = await request(port, data)
            assert resp is not None and resp.body == body


@pytest.mark.parametrize(
    ("hash_key", "carrying"),
    [
        ("{source: uri}", lambda key: get(f"/item/{key}")),
        ("{source: header, name: X-User}", lambda key: get("/", extra=f"x-user: {key}\r\n")),
        (
            "{source: cookie, name: Session}",
            lambda key: get("/", extra=f"Cookie: theme=dark; session={key}\r\n"),
        ),
    ],
    ids=["uri", "header", "cookie"],
)
async def test_hash_sends_each_key_to_one_server_and_spreads_keys(
    hash_key: str, carrying: Callable[[int], bytes]
) -> None:
    bs = await backends("s1", "s2", "s3")
    port = free_port()
    cfg = http_config(port, ports(bs), backend_extra=f"algorithm: hash\nhash_key: {hash_key}")
    async with running(cfg):
        chosen: dict[int, set[bytes]] = {}
        for _round in range(2):
            for key in range(12):
                resp = await request(port, carrying(key))
                assert resp is not None and resp.status == 200
                chosen.setdefault(key, set()).add(resp.body)
    assert all(len(servers_seen) == 1 for servers_seen in chosen.values()), chosen
    assert len(set().union(*chosen.values())) >= 2, "every key went to the same server"


async def test_passive_detection_marks_server_down_with_reason_then_retries_it() -> None:
    good = await Backend("good").start()
    dead_port = free_port()
    port = free_port()
    cfg = http_config(
        port,
        {"good": good.port, "dead": dead_port},
        backend_extra="""
        passive: {max_fails: 2, fail_timeout: 400ms}
    """,
    )
    async with running(cfg) as app:
        for _ in range(6):
            resp = await request(port, get())
            assert resp is not None and resp.status == 200
        downs = app.journal.recent("server.ejected")
        assert len(downs) == 1 and downs[0].subject == "be/dead"
        assert downs[0].message.startswith("server be/dead DOWN: 2 consecutive failures")
        assert "connect refused" in downs[0].message
        await asyncio.sleep(0.6)
        ups = app.journal.recent("server.up")
        assert [e.subject for e in ups] == ["be/dead"]
        assert "ejection of 0.4s over" in ups[0].message


async def test_frontend_max_connections_makes_extra_clients_wait() -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, frontend_extra="max_connections: 1")
    async with running(cfg):
        first = await Client.connect(port)
        first.send(get())
        assert (await first.read())[0].status == 200
        second = await Client.connect(port)
        second.send(get())
        with pytest.raises(TimeoutError):
            await second.read(timeout=0.3)
        first.close()
        (resp,) = await second.read(timeout=3)
        assert resp.status == 200
        second.close()


async def served_once(port: int) -> Client:
    """A client connection that got one answer and is now kept alive."""
    client = await Client.connect(port)
    client.send(get())
    assert (await client.read())[0].status == 200
    return client


async def stall_head_expecting_408(
    client: Client, partial: bytes = b"GET /stalled HTTP/1.1\r\nHost: h\r\n"
) -> None:
    client.send(partial)  # this head never ends
    got = await client.read(timeout=3)
    assert got and got[0].status == 408


async def test_idle_keep_alive_and_slow_request_head_timeouts() -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(
        port, {"s1": b.port}, frontend_extra="timeouts: {client: 300ms, http_request: 300ms}"
    )
    async with running(cfg):
        idle = await served_once(port)
        assert await idle.wait_closed(timeout=2)
        slow = await Client.connect(port)
        await stall_head_expecting_408(slow)
        idle.close()
        slow.close()
    assert len(b.requests) == 1


@pytest.mark.parametrize(
    "partial",
    [b"GET /stalled HTTP/1.1\r\nHost: h\r\n", b"G"],
    ids=["head without its end", "first byte only"],
)
async def test_stalled_head_on_a_kept_alive_connection_gets_408_not_the_idle_timeout(
    partial: bytes,
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(
        port, {"s1": b.port}, frontend_extra="timeouts: {client: 30s, http_request: 300ms}"
    )
    async with running(cfg):
        client = await served_once(port)
        await stall_head_expecting_408(client, partial)  # far sooner than the 30 s idle timeout
        client.close()
    assert len(b.requests) == 1


async def test_graceful_stop_lets_in_flight_request_finish() -> None:
    async def slow(req: Request, transport: asyncio.Transport) -> None:
        await asyncio.sleep(0.3)
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")

    b = await Backend("s1", slow).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port}), grace=2) as app:
        client = await Client.connect(port)
        client.send(get())
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(app.stop(2))
        (resp,) = await client.read(timeout=3)
        await stopping
        assert resp.body == b"done" and resp.header("connection") == b"close"
        with pytest.raises(OSError):
            await Client.connect(port)
        client.close()


async def test_slow_client_gets_a_large_response_intact_and_connection_is_reused() -> None:
    payload = b"z" * (8 * 1024 * 1024)
    b = await Backend("big", raw(ok_response(payload))).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})) as app:
        client = await Client.connect(port)
        client.send(get())
        received = 0
        while received < 1_000_000:  # read slowly so the proxy must apply backpressure
            received += len(await client.reader.read(65536))
            await asyncio.sleep(0.002)
        pool_buffer = sum(
            c.transport.get_write_buffer_size()
            for f in app.frontends
            for c in f.connections  # type: ignore[attr-defined]
        )
        assert pool_buffer < 4 * 1024 * 1024, "the proxy buffered the whole response"
        rest = await asyncio.wait_for(client.reader.readexactly(len(payload) - received + 0), 20)
        assert len(rest) + received >= len(payload)
        client.close()
        second = await request(port, get(), timeout=10)
    assert second is not None and second.body == payload
    assert b.connection_count == 1, "the upstream connection should have been reused"


async def _raw_exchange(
    port: int, data: bytes, until: bytes, timeout: float = 3.0, times: int = 1
) -> bytes:
    """Send raw bytes; read until `until` was seen `times` times or the connection closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    try:
        async with asyncio.timeout(timeout):
            while got.count(until) < times:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                got += chunk
    finally:
        writer.close()
    return got


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED",
    ],
    ids=["junk", "extra-response"],
)
async def test_bytes_after_a_complete_response_never_reach_the_next_request(answer: bytes) -> None:
    b = await Backend("s1", raw(answer)).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        got = await _raw_exchange(port, get("/first") + get("/second"), b"ok", times=2)
        got += await _raw_exchange(port, get("/third"), b"ok")
    assert got.count(b"HTTP/1.1 200") == 3, got
    assert b"INJECTED" not in got and b"JUNK" not in got
    assert b.connection_count >= 2, "the out-of-sync connection must not be reused"


async def test_pipelined_requests_ending_with_connection_close_are_all_answered() -> None:
    async def echo_target(req: Request, transport: asyncio.Transport) -> None:
        transport.write(ok_response(req.target))

    b = await Backend("s1", echo_target).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        data = get("/first") + get("/second", extra="Connection: close\r\n")
        got = await _raw_exchange(port, data, b"/second")
    assert b"/first" in got and b"/second" in got
    assert [r.target for r in b.requests] == [b"/first", b"/second"]


async def test_request_after_connection_close_is_not_served_but_the_first_is() -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        data = get("/a", extra="Connection: close\r\n") + get("/b")
        got = await _raw_exchange(port, data, b"s1\n")
    assert got.startswith(b"HTTP/1.1 200") and b"400" not in got
    assert [r.target for r in b.requests] == [b"/a"]


CHUNKED_POST = (
    b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
)


async def test_a_request_pipelined_in_one_read_behind_a_chunked_body_is_answered_too() -> None:
    # The reader follows the chunk framing (proxy/heads.py), so it knows where the next
    # head begins even in the same read.
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        client.send(CHUNKED_POST + get("/next") + CHUNKED_POST + CHUNKED_POST)
        got = await client.read(4)
        client.send(get("/last"))
        got += await client.read()
        client.close()
    assert [r.status for r in got] == [200] * 5
    assert [r.target for r in b.requests] == [
        b"/upload",
        b"/next",
        b"/upload",
        b"/upload",
        b"/last",
    ]
    assert b.requests[2].body == b"hello"


async def test_a_request_after_a_chunked_body_in_a_later_read_reuses_the_connection() -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        client.send(CHUNKED_POST)
        (first,) = await client.read()
        client.send(get("/next"))
        (second,) = await client.read()
        client.close()
    assert (first.status, second.status) == (200, 200)
    assert [r.target for r in b.requests] == [b"/upload", b"/next"]
    assert b.requests[0].body == b"hello"


async def test_pipeline_mixing_http11_and_http10_frames_each_response_for_its_request() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    b = await Backend("s1", raw(chunked)).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        data = get("/one") + b"GET /two HTTP/1.0\r\nHost: h\r\n\r\n"
        got = await _raw_exchange(port, data, b"\r\n\r\nhello", timeout=3)
    assert got.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    assert [r.target for r in b.requests] == [b"/one", b"/two"]


async def test_a_slow_reading_client_does_not_get_a_healthy_server_marked_down() -> None:
    payload = b"x" * (16 * 1024 * 1024)
    b = await Backend("s1", raw(ok_response(payload))).start()
    port = free_port()
    cfg = http_config(
        port,
        {"s1": b.port},
        backend_extra="timeouts: {connect: 1s, server: 500ms}\npassive: {max_fails: 1}",
    )
    async with running(cfg) as app:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get())
        await reader.read(1000)
        await asyncio.sleep(1.2)  # do not read: the proxy must pause the server, not time it out
        assert app.journal.recent("server.ejected") == []
        writer.close()
        assert (await request(port, get(), timeout=10)) is not None


async def test_a_client_waiting_for_a_connection_slot_is_not_cut_by_the_head_timer() -> None:
    async def slow(req: Request, transport: asyncio.Transport) -> None:
        await asyncio.sleep(0.8)
        transport.write(ok_response(b"done"))

    b = await Backend("s1", slow).start()
    port = free_port()
    cfg = http_config(
        port,
        {"s1": b.port},
        frontend_extra="max_connections: 1\ntimeouts: {client: 5s, http_request: 300ms}",
    )
    async with running(cfg):
        first = asyncio.create_task(request(port, get(), timeout=5))
        await asyncio.sleep(0.05)
        second = await request(port, get(), timeout=5)
        assert (await first) is not None
    assert second is not None and second.body == b"done"


async def test_host_with_an_empty_or_the_highest_port_is_accepted() -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        for host in ("example.com:", "example.com:65535"):
            resp = await request(port, get(host=host))
            assert resp is not None and resp.status == 200, host
    assert [r.header("host") for r in b.requests] == [b"example.com:", b"example.com:65535"]


async def test_http10_request_without_host_reaches_the_server_with_its_address() -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        got = await _raw_exchange(port, b"GET /old HTTP/1.0\r\n\r\n", b"s1\n")
    assert got.startswith(b"HTTP/1.1 200")
    (seen,) = b.requests
    assert [v for k, v in seen.headers if k.lower() == b"host"] == [b"127.0.0.1:%d" % b.port]
    assert seen.header("x-forwarded-host") is None  # the client named no host


BROKEN_CHUNK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"


async def test_malformed_chunk_before_anything_reached_the_client_gives_502(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = await Backend("s1", raw(BROKEN_CHUNK)).start()
    port = free_port()
    cfg = http_config(port, {"s1": b.port}, backend_extra="passive: {max_fails: 1}")
    async with running(cfg) as app:
        got = await _raw_exchange(port, get(), b"\n", times=99)
        ejected = app.journal.recent("server.ejected")
    assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), got
    assert b"hello" not in got and b"malformed response" in got
    assert [e.subject for e in ejected] == ["be/s1"]  # a protocol error counts, as before
    assert "after its head" not in caplog.text and "502 for GET /" in caplog.text


async def test_malformed_chunk_after_the_head_was_sent_cuts_the_response_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def late_break(req: Request, transport: asyncio.Transport) -> None:
        transport.write(BROKEN_CHUNK[: BROKEN_CHUNK.index(b"ZZ")])
        await asyncio.sleep(0.3)
        transport.write(b"ZZ\r\n")

    b = await Backend("s1", late_break).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        got = await _raw_exchange(port, get(), b"\n", times=99)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"5\r\nhello\r\n"), got
    assert b"502" not in got
    assert "response cut off, its head had already been sent to the client" in caplog.text


async def test_a_client_that_sends_nothing_gets_408_and_an_idle_kept_alive_one_is_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bascule.http")
    b = await Backend("s1").start()
    port = free_port()
    cfg = http_config(
        port, {"s1": b.port}, frontend_extra="timeouts: {client: 300ms, http_request: 300ms}"
    )
    async with running(cfg):
        silent = await _raw_exchange(port, b"", b"\n", times=99)
        idle = await Client.connect(port)
        idle.send(get())
        (first,) = await idle.read()
        after = await asyncio.wait_for(idle.reader.read(), 3)  # until the proxy closes
        idle.close()
    assert silent.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), silent
    assert b"no request received within timeouts.http_request" in silent
    assert first.status == 200 and after == b""  # HAProxy closes those silently too
    assert "closing idle keep-alive connection from 127.0.0.1" in caplog.text


CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_request_trailers_reach_the_server_checked() -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nTrailer: X-Checksum, X-Late\r\n\r\n")
        client.send(head + b"5\r\nhello\r\n0\r\nX-Checksum: sha256=abc\r\n")
        await asyncio.sleep(0.1)  # the trailer section arrives in two reads
        client.send(b"Connection: close\r\nX-Forwarded-For: 6.6.6.6\r\nX-Late:  v \r\n\r\n")
        (resp,) = await client.read()
        client.close()
    assert resp.status == 200
    (seen,) = b.requests
    assert seen.body == b"hello" and seen.header("trailer") == b"X-Checksum, X-Late"
    # Hop-by-hop and forwarding fields are removed from trailers as from heads.
    assert seen.trailers == [(b"X-Checksum", b"sha256=abc"), (b"X-Late", b"v ")]
    assert seen.raw.endswith(b"\r\n0\r\nX-Checksum: sha256=abc\r\nX-Late: v \r\n\r\n")


CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"


@pytest.mark.parametrize(
    ("trailers", "expected"),
    [
        # Passed on, on each response of a kept-alive connection.
        (b"grpc-status: 0\r\nX-Took: 12ms\r\n", b"0\r\ngrpc-status: 0\r\nX-Took: 12ms\r\n\r\n"),
        # Refused: the whole response was in one server read, so nothing reached the
        # client and it gets a 502.
        (b"Host: evil.example\r\n", b"not allowed in the response trailers"),
    ],
    ids=["forwarded", "refused"],
)
async def test_response_trailers_reach_the_client_checked(trailers: bytes, expected: bytes) -> None:
    b = await Backend("s1", raw(CHUNKED_OK + trailers + b"\r\n")).start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        # Until both trailer sections, or the close after a 502.
        got = await _raw_exchange(port, get() + get(), b"\r\n\r\n", times=4)
    if b"grpc" in trailers:
        assert got.count(b"\r\n2\r\nok\r\n" + expected) == 2, got
    else:
        assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and expected in got, got
        assert b"ok" not in got


@pytest.mark.parametrize(
    "trailer",
    [b"Host: evil.example", b"Transfer-Encoding: chunked", b"Content_Length: 5", b"X-A: a\x01"],
)
async def test_a_request_with_a_refused_trailer_gets_400_and_never_ends_at_the_server(
    trailer: bytes,
) -> None:
    b = await Backend("s1").start()
    port = free_port()
    async with running(http_config(port, {"s1": b.port})):
        client = await Client.connect(port)
        client.send(CHUNKED_HEAD + b"5\r\nhello\r\n")
        await asyncio.sleep(0.1)  # the head and first chunk are on their way to the server
        client.send(b"0\r\n" + trailer + b"\r\n\r\n")
        got = await client.read()
        assert await client.wait_closed()
        client.close()
    assert [r.status for r in got] == [400]
    assert b.requests == []  # the server saw no complete request


async def test_websocket_upgrade_is_refused_saying_what_to_do_instead() -> None:
    bs = await backends("s1")
    port = free_port()
    async with running(http_config(port, ports(bs))):
        resp = await request(
            port,
            get(
                "/chat",
                extra="Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            ),
        )
    assert resp is not None and resp.status == 400
    assert b"WebSocket and other protocol upgrades are not supported yet" in resp.body
    assert b"mode tcp frontend" in resp.body
    assert bs["s1"].requests == []


H2C_OFFER = (
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
)


async def test_an_h2c_upgrade_offer_is_answered_as_http11_like_any_request() -> None:
    """Java's HttpClient and `curl --http2` offer h2c on http:// URLs; HAProxy answers them."""
    b = await Backend("s1").start()
    port = free_port()
    first = b"GET /one HTTP/1.1\r\nHost: shop.example\r\n" + H2C_OFFER + b"\r\n"
    second = b"GET /two HTTP/1.1\r\nHost: shop.example\r\n\r\n"  # pipelined, same read
    async with running(http_config(port, {"s1": b.port})):
        got = await _raw_exchange(port, first + second, b"HTTP/1.1 200 OK", times=2)
    assert got.count(b"HTTP/1.1 200 OK") == 2, got
    assert b"101" not in got
    assert [r.target for r in b.requests] == [b"/one", b"/two"]
    offered = b.requests[0]
    assert offered.header("upgrade") is None and offered.header("http2-settings") is None


async def test_an_h2c_offer_with_a_body_or_beside_websocket_is_still_refused() -> None:
    bs = await backends("s1")
    port = free_port()
    with_body = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" + H2C_OFFER + b"\r\nabc"
    both = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n"
    async with running(http_config(port, ports(bs))):
        for request in (with_body, both):
            got = await _raw_exchange(port, request, b"\r\n\r\n", times=99)
            assert b"protocol upgrades are not supported yet" in got, got
