"""Per-request CPU of the L7 proxy's Python path, without sockets.

Drives one HttpClientConnection and one pooled UpstreamConnection with fake
transports: a request goes in, the captured upstream bytes are checked, a
response comes back, the captured client bytes are checked. Prints µs per
request (best of several rounds). `--profile` prints a cProfile table. `--vary` gives
every request its own path and X-Request-Id, so no head repeats the one before it
(like the `http-keepalive-varied` scenario of proxy_bench.py). `--routes` puts three
routing rules in front (two host rules that miss, then the path prefix that matches);
`--hash` balances with `algorithm: hash` on the URI, which builds a pick context per request.
This isolates the Python work from syscalls, which dominate a real run.

Timings here move with whatever else the machine runs. For a figure that does not, run it
twice under `valgrind --tool=callgrind` with different -n (say 500 and 2500, --rounds 1)
and divide the difference in instructions by the difference in requests.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import uvloop

from bascule.app import App
from bascule.config import load_config_text
from bascule.proxy.http import HttpClientConnection
from bascule.proxy.http_upstream import UpstreamConnection

CONFIG = """
frontends:
  - name: fe
    bind: "127.0.0.1:1"
    mode: http
    default_backend: be
{routes}backends:
  - name: be
{hash}    servers:
      - {{name: s1, address: 127.0.0.1, port: 2}}
"""
ROUTES = """\
    routes:
      - {host: api.example.com, backend: be}
      - {host: "*.static.example.com", backend: be}
      - {path_prefix: /index, backend: be}
"""
HASH = """\
    algorithm: hash
    hash_key: {source: uri}
"""
REQUEST = (
    b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n"
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False


def varied_requests(count: int) -> list[bytes]:
    return [
        b"GET /item/%d HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\n"
        b"Accept: */*\r\nX-Request-Id: %d\r\n\r\n" % (i, i)
        for i in range(count)
    ]


def config_text(routes: bool, hashing: bool) -> str:
    return CONFIG.format(routes=ROUTES if routes else "", hash=HASH if hashing else "")


async def run(
    n: int, rounds: int, profile: bool, vary: bool, routes: bool = False, hashing: bool = False
) -> None:
    app = App(load_config_text(config_text(routes, hashing)))
    loop = asyncio.get_running_loop()
    from bascule.clock import LoopClock
    from bascule.control.plane import BackendController
    from bascule.proxy.listener import FrontendRuntime

    backend = app.config.backends[0]
    controller = BackendController(backend, {}, app.journal, LoopClock(loop))
    frontend = FrontendRuntime(app.config.frontends[0], {"be": controller.runtime}, loop, app.pool)
    server = controller.runtime.snapshot.servers[0]
    upstream = UpstreamConnection(loop, server, app.pool, frontend.limits, 30.0)
    up_t = FakeTransport()
    upstream.connection_made(up_t)
    app.pool.put(server.key, upstream, loop.time())
    client = HttpClientConnection(frontend)
    cl_t = FakeTransport()
    client.connection_made(cl_t)
    await asyncio.sleep(0)

    requests = varied_requests(n) if vary else [REQUEST] * n

    def one(request: bytes = REQUEST) -> None:
        client.data_received(request)
        upstream.data_received(RESPONSE)

    one()
    assert up_t.out and cl_t.out[-1].endswith(b"hello\n"), (up_t.out, cl_t.out)
    prof = cProfile.Profile() if profile else None
    best = float("inf")
    for _ in range(rounds):
        up_t.out.clear()
        cl_t.out.clear()
        if prof:
            prof.enable()
        start = time.perf_counter()
        for request in requests:
            one(request)
        best = min(best, (time.perf_counter() - start) / n)
        if prof:
            prof.disable()
    print(f"L7 keep-alive request path (no syscalls): {best * 1e6:.2f} µs/request")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--vary", action="store_true", help="no request head repeats")
    parser.add_argument("--routes", action="store_true", help="three routing rules")
    parser.add_argument("--hash", action="store_true", help="algorithm: hash on the URI")
    args = parser.parse_args()
    uvloop.run(run(args.n, args.rounds, args.profile, args.vary, args.routes, args.hash))


if __name__ == "__main__":
    main()
