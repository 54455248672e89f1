"""The health checks' shared TCP connector and tick timers, on real loopback sockets."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from random import Random

from bascule.clock import LoopClock
from bascule.health.connector import MAX_IDLE, TIMED_OUT, Connector
from bascule.health.probes import TcpCheckSpec
from bascule.health.runner import CheckPlan, HealthRunner
from bascule.health.server_state import RiseFall, ServerStateMachine
from bascule.health.state import CheckTiming
from bascule.model import ServerView
from check_servers import FullBacklog, closed_port
from waiting import until

HOST = "127.0.0.1"
TIME_WAIT = "06"  # the state column of /proc/net/tcp


async def connect_once(connector: Connector, port: int, timeout: float = 1.0) -> int:
    return await connect_once_to(connector, HOST, port, timeout)


async def connect_once_to(connector: Connector, host: str, port: int, timeout: float = 1.0) -> int:
    outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connector.connect(socket.AF_INET, (host, port), timeout, outcome.set_result)
    return await outcome


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp_states_for_port(port: int) -> list[str]:
    states = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == port or int(remote.split(":")[1], 16) == port:
                states.append(state)
    return states


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


async def test_many_checks_leave_no_sockets_and_no_time_wait_behind() -> None:
    server = listener()
    port = server.getsockname()[1]
    connector = Connector(asyncio.get_running_loop())
    try:
        before = open_descriptors()
        results = [await connect_once(connector, port) for _ in range(300)]
        assert results == [0] * 300
        # Every check's socket is reset and reused or closed: nothing accumulates.
        assert open_descriptors() - before <= 2
        assert TIME_WAIT not in tcp_states_for_port(port)
    finally:
        connector.close()
        server.close()


async def test_checks_in_parallel_each_get_their_own_answer() -> None:
    server = listener()
    good, refused = server.getsockname()[1], closed_port()
    connector = Connector(asyncio.get_running_loop())
    try:
        ports = [good if i % 3 else refused for i in range(3 * MAX_IDLE)]
        results = await asyncio.gather(*(connect_once(connector, port) for port in ports))
        expected = [0 if port == good else errno.ECONNREFUSED for port in ports]
        assert results == expected
        # More connects at once than MAX_IDLE: the extra sockets are closed afterwards.
        assert connector.in_flight == 0
        assert [await connect_once(connector, good) for _ in range(5)] == [0] * 5
    finally:
        connector.close()
        server.close()


async def test_a_socket_reused_after_a_refusal_and_a_timeout_still_connects() -> None:
    server = listener()
    blackhole = FullBacklog()
    connector = Connector(asyncio.get_running_loop())
    loop = asyncio.get_running_loop()
    try:
        assert await connect_once(connector, closed_port()) == errno.ECONNREFUSED
        start = loop.time()
        assert await connect_once(connector, blackhole.port, timeout=0.2) == TIMED_OUT
        assert 0.19 <= loop.time() - start < 0.4
        assert await connect_once(connector, server.getsockname()[1]) == 0
    finally:
        connector.close()
        blackhole.close()
        server.close()


async def test_closing_abandons_connects_in_flight_and_frees_their_sockets() -> None:
    blackhole = FullBacklog()
    before = open_descriptors()
    connector = Connector(asyncio.get_running_loop())
    called: list[int] = []
    for _ in range(3):
        connector.connect(socket.AF_INET, (HOST, blackhole.port), 5.0, called.append)
    assert connector.in_flight == 3
    connector.close()
    await asyncio.sleep(0.05)
    blackhole.close()
    assert called == []
    assert open_descriptors() <= before


async def test_one_failing_callback_does_not_lose_the_others() -> None:
    server = listener()
    port = server.getsockname()[1]
    connector = Connector(asyncio.get_running_loop())
    seen: list[int] = []

    def broken(error: int) -> None:
        raise RuntimeError("a bug in one caller")

    try:
        connector.connect(socket.AF_INET, (HOST, port), 1.0, broken)
        assert await connect_once(connector, port) == 0
        connector.connect(socket.AF_INET, (HOST, port), 1.0, seen.append)
        await until(lambda: seen, what="the second caller's outcome")
        assert seen == [0]
    finally:
        connector.close()
        server.close()


async def test_a_connect_refused_at_once_does_not_spoil_the_next_check() -> None:
    # The kernel refuses some connects inside connect() itself (no route, a firewall
    # rule, a broadcast address): that socket must not be reused as if it were ready.
    server = listener()
    connector = Connector(asyncio.get_running_loop())
    try:
        assert await connect_once_to(connector, "255.255.255.255", 80) != 0
        assert [await connect_once(connector, server.getsockname()[1]) for _ in range(3)] == [0] * 3
    finally:
        connector.close()
        server.close()


async def test_a_server_refused_at_once_keeps_being_checked_and_so_do_the_others() -> None:
    server = listener()
    port = server.getsockname()[1]
    loop = asyncio.get_running_loop()
    good = ServerView("b", "good", HOST, port)
    unroutable = ServerView("b", "unroutable", "255.255.255.255", 80)
    machines = {v.key: ServerStateMachine(v, check=RiseFall(2, 3)) for v in (good, unroutable)}
    timing = CheckTiming(0.1, 0.1, 0.1)
    plans = [
        CheckPlan(good.key, TcpCheckSpec(HOST, port, 0.5), timing),
        CheckPlan(unroutable.key, TcpCheckSpec("255.255.255.255", 80, 0.5), timing),
    ]
    results: dict[str, list[bool]] = {good.key: [], unroutable.key: []}
    runner = HealthRunner(
        LoopClock(loop), plans, machines, lambda key, r: results[key].append(r.ok), Random(1)
    )
    runner.start()
    try:
        await until(
            lambda: all(len(seen) >= 7 for seen in results.values()),
            what=lambda: f"7 checks of each server at 100ms intervals: {results}",
        )
    finally:
        runner.stop()
        server.close()
    assert all(results[good.key])
    assert not any(results[unroutable.key])


async def test_a_conversation_may_close_the_connector_from_its_own_callback() -> None:
    # The daemon stopping from inside a check result must not break the loop.
    server = listener()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    connector = Connector(loop)
    closed = asyncio.Event()

    class Talk:
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            connector.close()
            closed.set()

        def data_received(self, data: bytes) -> None:
            raise AssertionError("nothing was sent")

        def eof_received(self) -> bool | None:
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            pass

        def expired(self, connected: bool) -> None:
            pass

    try:
        connector.converse(
            socket.AF_INET, (HOST, server.getsockname()[1]), 1.0, Talk(), sends_first=False
        )
        await asyncio.wait_for(closed.wait(), 1.0)
        await asyncio.sleep(0.05)
        assert connector.in_flight == 0
        assert errors == []
    finally:
        loop.set_exception_handler(None)
        server.close()
