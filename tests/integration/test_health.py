"""Health checks and failover end to end: a real Bascule, real servers on loopback.

Each test changes something a user would change (kills a server, makes its health
endpoint answer 500, lets an agent say "drain") and asserts what a user would see:
where client requests go, what the published snapshot says, and the event texts.
Intervals are short (100-200ms) and every wait is a poll with a deadline, so a slow
machine makes a test slower, not red.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from backends import Backend, Request, Respond, ok_response, status
from bascule.app import App
from bascule.model import WEIGHT_SCALE, Event, ServerState, ServerView
from check_servers import closed_port, flapping, response, silent
from client import get, request
from harness import free_port, running
from tcp_servers import LIVE, Handler, TcpServer, echo, greet_then_echo
from waiting import DEADLINE, POLL, until

HEALTH = b"/health"

TCP_CHECK = "check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2}"
HTTP_CHECK = (
    "check: {type: http, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, http: {path: /health}}"
)
# Tests about active checks turn passive ejection off, so that only the check decides.
NO_PASSIVE = "passive: {max_fails: 0}"

_CLIENTS: list[asyncio.StreamWriter] = []  # raw TCP clients, closed after each test


@pytest.fixture(autouse=True)
async def _close_clients_and_stop_tcp_servers() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        writer = _CLIENTS.pop()  # named: a bare temporary is freed (and warns) before abort()
        writer.transport.abort()
    while LIVE:
        await LIVE.pop().stop()


# -- configuration ------------------------------------------------------------------------


def srv(name: str, port: int, **options: object) -> str:
    """One server as a YAML flow mapping; `options` are extra keys (`backup="true"`)."""
    extra = "".join(f", {key}: {value}" for key, value in options.items())
    return f"{{name: {name}, address: 127.0.0.1, port: {port}{extra}}}"


def lb_config(port: int, servers: list[str], backend: str = "", mode: str = "http") -> str:
    """One frontend on `port` and one backend `be` with `servers` and extra `backend` lines."""
    extra = textwrap.indent(textwrap.dedent(backend).strip(), " " * 4)
    listed = "\n".join(f"      - {s}" for s in servers)
    return (
        "global: {grace: 1s, log_level: debug}\n"
        "frontends:\n"
        f'  - {{name: fe, bind: "127.0.0.1:{port}", mode: {mode}, default_backend: be}}\n'
        "backends:\n"
        "  - name: be\n"
        f"{extra + chr(10) if extra else ''}"
        "    servers:\n"
        f"{listed}\n"
    )


# -- servers ------------------------------------------------------------------------------


def serving(name: str, health: bytes = ok_response(b"ok\n")) -> Respond:
    """Answer /health with the raw bytes `health`, anything else with the server's name."""

    def respond(req: Request, transport: asyncio.Transport) -> None:
        transport.write(health if req.target == HEALTH else ok_response(name.encode() + b"\n"))

    return respond


async def started(name: str, respond: Respond | None = None) -> Backend:
    return await Backend(name, respond or serving(name)).start()


def checks_of(backend: Backend) -> int:
    return sum(1 for r in backend.requests if r.target == HEALTH)


def traffic_of(backend: Backend) -> int:
    """Client requests the server received (health checks excluded)."""
    return sum(1 for r in backend.requests if r.target != HEALTH)


def agent_saying(answers: list[bytes]) -> Handler:
    """An HAProxy agent that answers its latest line, `answers[-1]`, then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answers[-1])
        await writer.drain()

    return handler


# -- observing Bascule --------------------------------------------------------------------


async def wait_until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    await until(condition, DEADLINE, what)


def events(app: App, kind: str, subject: str | None = None) -> list[Event]:
    return [e for e in app.journal.recent(kind) if subject is None or e.subject == subject]


async def event(app: App, kind: str, subject: str | None = None, nth: int = 1) -> Event:
    """The `nth` event of `kind` (about `subject`), waiting for it if needed."""
    await wait_until(
        lambda: len(events(app, kind, subject)) >= nth,
        lambda: (
            f"event #{nth} {kind} {subject or ''}; journal: "
            + " | ".join(e.message for e in app.journal.recent())
        ),
    )
    return events(app, kind, subject)[nth - 1]


async def ended(reader: asyncio.StreamReader) -> bool:
    """True when the connection ends (EOF or reset) within the deadline."""
    try:
        async with asyncio.timeout(DEADLINE):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def view(app: App, name: str) -> ServerView:
    servers = app.controllers["be"].runtime.snapshot.servers
    return next(s for s in servers if s.name == name)


async def answered_by(port: int, count: int) -> list[str]:
    """Send `count` requests; who answered each (the body names it), or the error status."""
    names = []
    for _ in range(count):
        resp = await request(port, get())
        assert resp is not None, "no response at all"
        names.append(resp.body.decode().strip() if resp.status == 200 else str(resp.status))
    return names


# -- active checks ------------------------------------------------------------------------


async def test_tcp_check_takes_a_killed_server_out_and_brings_it_back_on_restart() -> None:
    s1, s2 = await started("s1"), await started("s2")
    port = free_port()
    servers = [srv("s1", s1.port), srv("s2", s2.port)]
    async with running(lb_config(port, servers, f"{TCP_CHECK}\n{NO_PASSIVE}")) as app:
        assert set(await answered_by(port, 4)) == {"s1", "s2"}

        await s2.stop()
        down = await event(app, "server.down", "be/s2")
        assert down.message.startswith(
            "server be/s2 DOWN: tcp check: connect refused (2/2 consecutive failures over "
        ), down.message
        # The span of the two failures is the fast interval (200ms), measured.
        gap = re.search(r"over (\d+)ms\)$", down.message)
        assert gap is not None and 150 <= int(gap.group(1)) <= 2000, down.message
        assert view(app, "s2").state is ServerState.DOWN
        assert await answered_by(port, 6) == ["s1"] * 6

        await s2.start(s2.port)
        up = await event(app, "server.up", "be/s2")
        assert up.message == "server be/s2 UP after 2/2 checks"
        assert traffic_of(s2) == 2, "s2 got traffic while DOWN"
        assert "s2" in await answered_by(port, 4)


async def test_http_check_fails_on_an_unexpected_status_or_a_body_without_the_text() -> None:
    failing = await started("s1", serving("s1", response(500)))
    starting = await started("s2", serving("s2", ok_response(b"starting\n")))
    healthy = await started("s3", serving("s3", ok_response(b"all ok\n")))
    port = free_port()
    check = (
        "check: {type: http, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, "
        "http: {path: /health, expect_body: ok}}"
    )
    servers = [srv(b.name, b.port) for b in (failing, starting, healthy)]
    async with running(lb_config(port, servers, f"{check}\n{NO_PASSIVE}")) as app:
        status_down = await event(app, "server.down", "be/s1")
        assert status_down.message.startswith(
            "server be/s1 DOWN: http check: status 500 (expected 200-399) "
            "(2/2 consecutive failures over "
        ), status_down.message
        body_down = await event(app, "server.down", "be/s2")
        assert body_down.message.startswith(
            'server be/s2 DOWN: http check: body does not contain "ok" '
            "(2/2 consecutive failures over "
        ), body_down.message

        assert events(app, "server.", "be/s3") == []
        assert view(app, "s3").state is ServerState.UP
        assert await answered_by(port, 4) == ["s3"] * 4


async def test_a_hanging_check_fails_at_its_timeout_and_delays_no_other_server() -> None:
    hung_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def accept_and_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung_at.append(loop.time())
        await silent(reader, writer)

    black_hole = await TcpServer(accept_and_hang).start()
    s1 = await started("s1")
    checked_at: list[float] = []

    def timed(req: Request, transport: asyncio.Transport) -> None:
        if req.target == HEALTH:
            checked_at.append(loop.time())
        serving("s2")(req, transport)

    s2 = await started("s2", timed)
    port = free_port()
    # s1's check hangs for its whole 800ms timeout; s2 is checked every 100ms meanwhile.
    slow = f"{{port: {black_hole.port}, interval: 800ms, timeout: 800ms, fall: 1}}"
    servers = [srv("s1", s1.port, check=slow), srv("s2", s2.port)]
    async with running(lb_config(port, servers, f"{HTTP_CHECK}\n{NO_PASSIVE}")) as app:
        down = await event(app, "server.down", "be/s1")
        assert down.message.startswith("server be/s1 DOWN: http check: timeout after 0.8s")

        start = hung_at[0]
        during_hang = [t for t in checked_at if start <= t < start + 0.8]
        # About 8 at 100ms intervals; a runner that waited for s1 would manage at most 1.
        assert len(during_hang) >= 4, (during_hang, start)
        assert events(app, "server.", "be/s2") == []


async def test_a_flapping_server_never_changes_state_with_rise_2_fall_2() -> None:
    alternating = await TcpServer(flapping([200, 500])).start()
    twice_failing = await TcpServer(flapping([200, 500, 500])).start()
    s1, s2 = await started("s1"), await started("s2")
    port = free_port()
    servers = [
        srv("s1", s1.port, check=f"{{port: {alternating.port}}}"),
        srv("s2", s2.port, check=f"{{port: {twice_failing.port}}}"),
    ]
    async with running(lb_config(port, servers, f"{HTTP_CHECK}\n{NO_PASSIVE}")) as app:
        states = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while alternating.connection_count < 10 and loop.time() < deadline:
            states.add(view(app, "s1").state)
            await asyncio.sleep(POLL)
        assert alternating.connection_count >= 10, "s1 was not checked every 100ms"
        # Each failure is followed by a pass, so health never drops below rise (HAProxy).
        assert states == {ServerState.UP}
        assert events(app, "server.", "be/s1") == []
        # The same checks do catch two failures in a row.
        await event(app, "server.down", "be/s2")


# -- backups, slow start, initial states --------------------------------------------------


async def test_backup_serves_while_no_primary_is_up_and_primary_takes_back_over() -> None:
    s1, b1 = await started("s1"), await started("b1")
    port = free_port()
    servers = [srv("s1", s1.port), srv("b1", b1.port, backup="true")]
    async with running(lb_config(port, servers, f"{TCP_CHECK}\n{NO_PASSIVE}")) as app:
        assert await answered_by(port, 3) == ["s1"] * 3

        await s1.stop()
        in_use = await event(app, "backend.backup_in_use", "be")
        assert in_use.message == "backend be: no primary available, 1 backup server in use"
        assert await answered_by(port, 3) == ["b1"] * 3

        await s1.start(s1.port)
        over = await event(app, "backend.backup_in_use_over", "be")
        assert over.message == "backend be: primary servers available again, backups idle"
        assert await answered_by(port, 3) == ["s1"] * 3
    assert traffic_of(b1) == 3


async def test_slow_start_ramps_the_weight_of_a_returning_server() -> None:
    s1, s2 = await started("s1"), await started("s2")
    port = free_port()
    servers = [srv("s1", s1.port, weight=20), srv("s2", s2.port, weight=20)]
    backend = f"{TCP_CHECK}\n{NO_PASSIVE}\nslow_start: 1s"
    async with running(lb_config(port, servers, backend)) as app:
        full = 20 * WEIGHT_SCALE  # the snapshot's internal units
        assert view(app, "s2").weight == full  # no ramp for servers up at startup
        await s2.stop()
        await event(app, "server.down", "be/s2")
        await s2.start(s2.port)
        await wait_until(lambda: view(app, "s2").state is ServerState.UP, lambda: "s2 back UP")

        loop = asyncio.get_running_loop()
        up_seen = loop.time()
        weights = [view(app, "s2").weight]
        while weights[-1] < full and loop.time() - up_seen < DEADLINE:
            await asyncio.sleep(POLL)
            weights.append(view(app, "s2").weight)
        ramp = loop.time() - up_seen

    assert weights[0] < full and weights[-1] == full, weights
    assert weights == sorted(weights), weights
    assert len(set(weights)) >= 4, weights  # several steps, not one jump
    assert ramp <= 1.5, (ramp, weights)


async def test_initial_state_down_needs_rise_checks_and_check_first_needs_one() -> None:
    s1 = await started("s1")
    s2, s3 = await started("s2"), await started("s3")
    port = free_port()
    check = (
        "check: {type: http, interval: 200ms, timeout: 150ms, rise: 3, fall: 2, "
        "http: {path: /health}}"
    )
    servers = [
        srv("s1", s1.port, check="{type: none}"),
        srv("s2", s2.port, initial_state="down"),
        srv("s3", s3.port, initial_state="check_first"),
    ]
    async with running(lb_config(port, servers, f"{check}\n{NO_PASSIVE}")) as app:
        # What each server had seen when it came UP (events are recorded synchronously).
        at_up: dict[str, tuple[int, int]] = {}
        by_name = {"be/s2": s2, "be/s3": s3}

        def note(e: Event) -> None:
            if e.kind == "server.up" and e.subject in by_name:
                backend = by_name[e.subject]
                at_up[e.subject] = (checks_of(backend), traffic_of(backend))

        app.journal.subscribe(note)
        assert view(app, "s2").state is ServerState.DOWN
        assert view(app, "s3").state is ServerState.DOWN

        # Client traffic flows the whole time, so a server UP too early would get some.
        answers: Counter[str] = Counter()
        while not (answers["s2"] and answers["s3"]):
            answers.update(await answered_by(port, 1))
            assert sum(answers.values()) < 1000, answers
            await asyncio.sleep(POLL)

    assert at_up == {"be/s2": (3, 0), "be/s3": (1, 0)}, at_up
    assert events(app, "server.up", "be/s2")[0].message == "server be/s2 UP after 3/3 checks"
    assert events(app, "server.up", "be/s3")[0].message == "server be/s3 UP after 1/1 checks"


async def test_drained_server_gets_no_new_requests_and_maint_server_not_even_checks() -> None:
    s1, s2, s3 = await started("s1"), await started("s2"), await started("s3")
    port = free_port()
    servers = [
        srv("s1", s1.port),
        srv("s2", s2.port, initial_state="drain"),
        srv("s3", s3.port, initial_state="maint"),
    ]
    async with running(lb_config(port, servers, f"{HTTP_CHECK}\n{NO_PASSIVE}")) as app:
        assert view(app, "s2").state is ServerState.DRAIN
        assert view(app, "s3").state is ServerState.MAINT
        assert await answered_by(port, 6) == ["s1"] * 6
        # Over several check rounds: the draining server is still checked, MAINT is not.
        await wait_until(
            lambda: checks_of(s1) >= 5 and checks_of(s2) >= 5,
            lambda: f"checks s1={checks_of(s1)} s2={checks_of(s2)}",
        )
        assert view(app, "s2").state is ServerState.DRAIN
        assert await answered_by(port, 3) == ["s1"] * 3
    assert traffic_of(s2) == 0
    assert s3.connection_count == 0


async def test_agent_sets_the_weight_then_drains_the_server() -> None:
    answers = [b"50%\n"]
    agent = await TcpServer(agent_saying(answers)).start()
    s1, s2 = await started("s1"), await started("s2")
    port = free_port()
    agent_check = (
        "{type: agent, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, "
        f"agent: {{port: {agent.port}}}}}"
    )
    servers = [srv("s1", s1.port, weight=10, check=agent_check), srv("s2", s2.port, weight=10)]
    async with running(lb_config(port, servers, NO_PASSIVE)) as app:
        weight = await event(app, "server.weight", "be/s1")
        assert weight.message == (
            "server be/s1 weight 10 -> 5 (50% of configured 10): agent check: weight 50%"
        )
        assert view(app, "s1").weight == 5 * WEIGHT_SCALE
        assert view(app, "s1").state is ServerState.UP

        answers.append(b"drain\n")
        drain = await event(app, "server.drain", "be/s1")
        assert drain.message == "server be/s1 DRAIN: agent check: drain"
        assert view(app, "s1").state is ServerState.DRAIN
        before = traffic_of(s1)
        assert await answered_by(port, 4) == ["s2"] * 4
        assert traffic_of(s1) == before


async def test_agent_half_on_a_server_of_weight_one_halves_its_traffic() -> None:
    agent = await TcpServer(agent_saying([b"50%\n"])).start()
    s1, s2 = await started("s1"), await started("s2")
    port = free_port()
    agent_check = (
        "{type: agent, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, "
        f"agent: {{port: {agent.port}}}}}"
    )
    servers = [srv("s1", s1.port, check=agent_check), srv("s2", s2.port)]  # weight 1 each
    async with running(lb_config(port, servers, NO_PASSIVE)) as app:
        weight = await event(app, "server.weight", "be/s1")
        assert weight.message == (
            "server be/s1 weight 1 -> 0.5 (50% of configured 1): agent check: weight 50%"
        )
        # smooth round robin: exactly one in three over whole cycles
        assert Counter(await answered_by(port, 30)) == {"s1": 10, "s2": 20}


# -- passive detection and outlier ejection -----------------------------------------------


async def test_ejection_cap_keeps_a_failing_server_in_and_says_so() -> None:
    live = await started("s4")
    port = free_port()
    dead = [srv(f"s{i}", closed_port()) for i in (1, 2, 3)]
    passive = "passive: {max_fails: 1, fail_timeout: 10s, max_ejected_percent: 50}"
    async with running(lb_config(port, [*dead, srv("s4", live.port)], passive)) as app:
        # Retries (3 by default) move every request on to the one live server.
        assert await answered_by(port, 12) == ["s4"] * 12

        ejected = events(app, "server.ejected")
        assert len(ejected) == 2, [e.message for e in ejected]
        snapshot = app.controllers["be"].runtime.snapshot
        down = {s.name for s in snapshot.servers if s.state is not ServerState.UP}
        assert down == {e.subject.removeprefix("be/") for e in ejected}
        (kept,) = {"s1", "s2", "s3"} - down
        assert view(app, kept).state is ServerState.UP

        (capped,) = events(app, "server.ejection_capped")  # once per failure streak
        assert capped.subject == f"be/{kept}"
        assert capped.message == (
            f"backend be: {kept} not ejected: 2 of 4 servers (50%) already ejected, "
            "max_ejected_percent 50"
        )


async def test_repeat_ejections_last_twice_as_long_each_time() -> None:
    live = await started("s2")
    port = free_port()
    passive = "passive: {max_fails: 1, fail_timeout: 200ms, max_ejection_time: 10s}"
    servers = [srv("s1", closed_port()), srv("s2", live.port)]
    async with running(lb_config(port, servers, passive)) as app:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while len(events(app, "server.ejected", "be/s1")) < 3 and loop.time() < deadline:
            assert await answered_by(port, 1) == ["s2"]
            await asyncio.sleep(POLL)

    story = [e for e in app.journal.recent("server.") if e.subject == "be/s1"]
    assert [e.kind for e in story[:5]] == [
        "server.ejected",
        "server.up",
        "server.ejected",
        "server.up",
        "server.ejected",
    ], [e.message for e in story]
    first, second, third = (story[i].message for i in (0, 2, 4))
    assert first.endswith("(last: connect refused); ejected for 0.2s"), first
    assert second.endswith("ejected for 0.4s (ejection 2 in a row, max_ejection_time 10s)")
    assert third.endswith("ejected for 0.8s (ejection 3 in a row, max_ejection_time 10s)")
    assert story[1].message == "server be/s1 UP: ejection of 0.2s over"
    assert story[3].message == "server be/s1 UP: ejection of 0.4s over"


async def test_consecutive_5xx_eject_a_server_answering_500() -> None:
    broken = await started("s1", status(500))
    fine = await started("s2")
    port = free_port()
    passive = "passive: {consecutive_5xx: 3, fail_timeout: 10s}"
    servers = [srv("s1", broken.port), srv("s2", fine.port)]
    async with running(lb_config(port, servers, passive)) as app:
        answers: list[str] = []
        while not events(app, "server.ejected", "be/s1"):
            answers += await answered_by(port, 1)
            assert len(answers) < 20, answers
        # A 500 is a response, not a failure: clients got them until the third one.
        assert answers.count("500") == 3
        assert traffic_of(broken) == 3
        (ejected,) = events(app, "server.ejected", "be/s1")
        assert ejected.message == (
            "server be/s1 DOWN: 3 consecutive 5xx responses (last: 500); ejected for 10s"
        )
        assert await answered_by(port, 4) == ["s2"] * 4


# -- what DOWN does to open connections, and degraded backends -----------------------------


@pytest.mark.parametrize("on_down", ["shutdown_sessions", "none"])
async def test_on_down_shutdown_sessions_closes_open_sessions(on_down: str) -> None:
    server = await TcpServer(greet_then_echo("s1")).start()
    check_port = await TcpServer(echo).start()
    port = free_port()
    check = (
        f"check: {{type: tcp, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, "
        f"port: {check_port.port}}}"
    )
    backend = f"{check}\non_down: {on_down}"
    async with running(lb_config(port, [srv("s1", server.port)], backend, "tcp")) as app:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        _CLIENTS.append(writer)
        assert await asyncio.wait_for(reader.readline(), DEADLINE) == b"s1\n"

        await check_port.stop()  # the server itself keeps running; only its check fails
        await event(app, "server.down", "be/s1")

        if on_down == "shutdown_sessions":
            closed = await event(app, "server.sessions_shutdown", "be/s1")
            assert closed.message == (
                "server be/s1: closed 1 connection (on_down: shutdown_sessions)"
            )
            assert await ended(reader), "the session to the DOWN server is still open"
        else:
            writer.write(b"still there?\n")
            assert await asyncio.wait_for(reader.readline(), DEADLINE) == b"still there?\n"
            assert events(app, "server.sessions_shutdown") == []


async def test_dropping_below_min_healthy_marks_the_backend_degraded() -> None:
    s1, s2, s3 = await started("s1"), await started("s2"), await started("s3")
    port = free_port()
    servers = [srv(b.name, b.port) for b in (s1, s2, s3)]
    backend = f'{TCP_CHECK}\n{NO_PASSIVE}\nmin_healthy: "60%"'  # 60% of 3: 2 servers
    async with running(lb_config(port, servers, backend)) as app:
        await s1.stop()
        await event(app, "server.down", "be/s1")
        assert events(app, "backend.degraded") == []  # 2 of 3 up is still enough

        await s2.stop()
        degraded = await event(app, "backend.degraded", "be")
        assert degraded.message == "backend be degraded: 1 of 3 servers up, min_healthy 2"

        await s2.start(s2.port)
        healthy = await event(app, "backend.degraded_over", "be")
        assert healthy.message == "backend be healthy again: 2 of 3 servers up"


# -- backend-wide events ------------------------------------------------------------------


async def test_backend_unavailable_says_what_the_clients_of_its_own_frontends_get() -> None:
    web, api, sql = free_port(), free_port(), free_port()
    down = "initial_state: down"  # no check: DOWN from the start, nothing to serve
    config = f"""
    frontends:
      - {{name: web, bind: "127.0.0.1:{web}", default_backend: app}}
      - name: api
        bind: "127.0.0.1:{api}"
        default_backend: app
        routes: [{{path_prefix: /mixed, backend: mixed}}]
      - {{name: sql, bind: "127.0.0.1:{sql}", mode: tcp, default_backend: db}}
      - {{name: sql2, bind: "127.0.0.1:{free_port()}", mode: tcp, default_backend: mixed}}
    backends:
      - name: app
        servers: [{{name: s1, address: 127.0.0.1, port: {free_port()}, {down}}}]
      - name: db
        servers: [{{name: s1, address: 127.0.0.1, port: {free_port()}, {down}}}]
      - name: mixed
        servers: [{{name: s1, address: 127.0.0.1, port: {free_port()}, {down}}}]
      - name: spare
        servers: [{{name: s1, address: 127.0.0.1, port: {free_port()}, {down}}}]
    """
    async with running(config) as app:
        said = {e.subject: e.message for e in events(app, "backend.unavailable")}
        assert said == {
            "app": "backend app: no server available (HTTP frontends web, api answer 503)",
            "db": "backend db: no server available "
            "(TCP frontend sql closes new connections at once)",
            "mixed": "backend mixed: no server available "
            "(HTTP frontend api answers 503; TCP frontend sql2 closes new connections at once)",
            "spare": "backend spare: no server available (no frontend uses it)",
        }
        # and that is what the clients get
        answer = await request(web, get("/"))
        assert answer is not None and answer.status == 503
        reader, writer = await asyncio.open_connection("127.0.0.1", sql)
        _CLIENTS.append(writer)
        assert await ended(reader)
