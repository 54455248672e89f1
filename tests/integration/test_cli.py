"""The `bascule` command run the way a user runs it: a real process, real sockets, signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httptools
import pytest

from backends import Backend, Request, ok_response
from bascule.proxy.parser_version import supported_requirement
from client import Client, get, request
from harness import free_port
from sessions import session

REPO = Path(__file__).resolve().parents[2]
SLOW_RESPONSE = 2.0  # seconds the slow backend takes, while Bascule is asked to stop
GRACE = 10.0


def bascule(
    *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bascule ARGS` to completion (killed if it outlives `timeout`)."""
    return subprocess.run(
        [sys.executable, "-m", "bascule", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def write_config(tmp_path: Path, text: str, name: str = "bascule.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def port_open(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def wait_until(condition_port: int, open_: bool, timeout: float) -> bool:
    """Wait until 127.0.0.1:`condition_port` accepts (open_) or refuses connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await port_open(condition_port) == open_:
            return True
        await asyncio.sleep(0.05)
    return False


@contextlib.asynccontextmanager
async def process(*argv: str, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start `argv` (stdout and stderr to `log`); it is killed by PID if still running after."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# -- help ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ((), ["run", "validate", "reload", "demo", "--version"]),
        (("run",), ["--config", "--log-level", "SIGTERM", "grace"]),
        (("validate",), ["--config", "file:line"]),
        (("reload",), ["--config", "--socket", "file:line", "grace", "SIGHUP"]),
        (("demo",), ["--duration", "--rate", "--port", "--serve", "--cluster"]),
    ],
    ids=["bascule", "run", "validate", "reload", "demo"],
)
def test_help_exits_0_and_names_the_key_options(args: tuple[str, ...], mentions: list[str]) -> None:
    done = bascule(*args, "--help")
    assert done.returncode == 0, done.stderr
    for word in mentions:
        assert word in done.stdout, f"{word!r} missing from `bascule {' '.join(args)} --help`"


# -- validate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "summary"),
    [
        ("examples/minimal.yaml", "1 frontend, 1 backend, 2 servers"),
        ("examples/bascule.yaml", "2 frontends, 3 backends"),
    ],
)
def test_validate_accepts_the_shipped_examples(example: str, summary: str) -> None:
    # --no-host: bascule.yaml names servers of example.com, which resolve nowhere.
    done = bascule("validate", "-c", example, "--no-host")
    assert done.returncode == 0, done.stderr
    assert f"{example}: OK" in done.stdout
    assert summary in done.stdout


BAD_CONFIG = """\
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: ap
    maxconn: 100
backends:
  - name: app
    servers:
      - {{name: s1, address: 127.0.0.1, port: 70000}}
"""
# (line, path, words the explanation must contain) for each problem above
BAD_CONFIG_PROBLEMS = [
    (4, "frontends[0].default_backend", ['"ap"', "app"]),
    (5, "frontends[0].maxconn", ["unknown key", "max_connections"]),
    (9, "backends[0].servers[0].port", ["70000", "1-65535"]),
]


def assert_each_problem_reported(output: str, path: Path) -> None:
    for line, field, words in BAD_CONFIG_PROBLEMS:
        prefix = f"{path}:{line}: {field}: "
        matching = [text for text in output.splitlines() if text.startswith(prefix)]
        assert matching, f"no line starting with {prefix!r} in:\n{output}"
        for word in words:
            assert word in matching[0], (word, matching[0])
    assert "3 problems found" in output


def test_validate_reports_every_problem_with_file_line_and_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, BAD_CONFIG.format(port=free_port()), "bad.yaml")
    done = bascule("validate", "-c", str(path))
    assert done.returncode == 1
    assert_each_problem_reported(done.stdout + done.stderr, path)
    assert "OK" not in done.stdout


# -- run -------------------------------------------------------------------------------


def good_config(port: int, app_port: int, slow_port: int) -> str:
    return f"""
    global: {{grace: {GRACE:g}s, log_level: info}}
    frontends:
      - name: web
        bind: "127.0.0.1:{port}"
        default_backend: app
        routes:
          - {{path_prefix: /slow, backend: slow}}
    backends:
      - name: app
        servers:
          - {{name: s1, address: 127.0.0.1, port: {app_port}}}
      - name: slow
        servers:
          - {{name: slow1, address: 127.0.0.1, port: {slow_port}}}
    """


async def test_run_serves_then_sigterm_lets_the_in_flight_request_finish(tmp_path: Path) -> None:
    arrived = asyncio.Event()

    async def slow(req: Request, transport: asyncio.Transport) -> None:
        arrived.set()
        await asyncio.sleep(SLOW_RESPONSE)
        transport.write(ok_response(b"slow but complete\n"))

    slow_backend = await Backend("slow", slow).start()
    app_port, port = free_port(), free_port()
    path = write_config(tmp_path, good_config(port, app_port, slow_backend.port))
    python = sys.executable
    demo_backend = (python, "-m", "bascule.demo.backend", "--name", "s1", "--port", str(app_port))
    async with (
        process(*demo_backend, log=tmp_path / "s1.log"),
        process(python, "-m", "bascule", "run", "-c", str(path), log=tmp_path / "run.log") as lb,
    ):
        assert await wait_until(app_port, open_=True, timeout=20), "demo backend did not start"
        assert await wait_until(port, open_=True, timeout=20), (tmp_path / "run.log").read_text()
        resp = await request(port, get("/"))
        assert resp is not None and resp.status == 200 and resp.body == b"s1\n"

        # SIGHUP (systemctl reload) reloads the unchanged file, and serving goes on
        lb.send_signal(signal.SIGHUP)
        resp = await request(port, get("/"))
        assert resp is not None and resp.status == 200, (tmp_path / "run.log").read_text()
        assert lb.returncode is None

        client = await Client.connect(port)
        try:
            client.send(get("/slow/report"))
            await asyncio.wait_for(arrived.wait(), 10)
            lb.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            # New connections are refused at once, while the slow request is still running.
            assert await wait_until(port, open_=False, timeout=SLOW_RESPONSE / 2)
            got = await client.read(timeout=GRACE)
        finally:
            client.close()
        assert got and got[0].status == 200 and got[0].body == b"slow but complete\n"
        rc = await asyncio.wait_for(lb.wait(), GRACE)
        took = time.monotonic() - stopped_at
    log = (tmp_path / "run.log").read_text()
    assert rc == 0, log
    assert took < GRACE, f"stopping took {took:.1f}s, more than the grace period"
    assert "grace period" not in log, "the in-flight request should not have been cut"
    assert "reloaded" in log and "no change" in log


def test_run_on_a_port_in_use_exits_2_naming_frontend_and_address(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        path = write_config(tmp_path, good_config(port, free_port(), free_port()))
        done = bascule("run", "-c", str(path))
    assert done.returncode == 2, done.stderr
    assert "frontend web" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr


def test_run_on_an_unverified_httptools_exits_2_and_validate_still_passes(
    tmp_path: Path,
) -> None:
    # The installed httptools, relabelled as a release the proxy was not verified with,
    # first on the path.
    site = tmp_path / "site"
    shutil.copytree(Path(httptools.__file__).parent, site / "httptools")
    (site / "httptools" / "_version.py").write_text("__version__ = '0.6.2'\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    port = free_port()
    path = write_config(tmp_path, good_config(port, free_port(), free_port()))
    done = bascule("run", "-c", str(path), env=env)
    assert done.returncode == 2, done.stderr
    assert "httptools 0.6.2 is installed" in done.stderr
    assert f"pip install '{supported_requirement()}'" in done.stderr
    assert "listening" not in done.stderr
    checked = bascule("validate", "-c", str(path), env=env)
    assert checked.returncode == 0, checked.stderr


def test_run_with_a_bad_config_exits_1_and_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, BAD_CONFIG.format(port=port), "bad.yaml")
    done = bascule("run", "-c", str(path))
    assert done.returncode == 1
    assert_each_problem_reported(done.stderr, path)
    assert "nothing was started" in done.stderr
    assert "listening" not in done.stderr


def test_run_with_an_unresolvable_server_exits_2_naming_backend_and_server(
    tmp_path: Path,
) -> None:
    config = f"""
    frontends:
      - name: web
        bind: "127.0.0.1:{free_port()}"
        default_backend: app
    backends:
      - name: app
        servers:
          - {{name: s1, address: 127.0.0.1, port: {free_port()}}}
          - {{name: ghost, address: nonexistent.invalid, port: 80}}
    """
    path = write_config(tmp_path, config)
    done = bascule("run", "-c", str(path), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "backend app server ghost" in done.stderr
    assert "nonexistent.invalid" in done.stderr


UNRESOLVABLE_SERVER = """\
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app}}
backends:
  - name: app
    servers:
      - {{name: s1, address: 127.0.0.1, port: 9001}}
      - {{name: local, address: localhost, port: 9002}}
      - {{name: ghost, address: nonexistent.invalid, port: 80}}
  - name: more
    servers:
      - {{name: ghost2, address: ghost.invalid, port: 80}}
"""


def test_validate_resolves_server_names_as_run_does_unless_no_host(tmp_path: Path) -> None:
    path = write_config(tmp_path, UNRESOLVABLE_SERVER.format(port=free_port()))
    done = bascule("validate", "-c", str(path))
    assert done.returncode == 1, done.stdout
    assert "OK" not in done.stdout
    for line, field, server, name in [
        (8, "backends[0].servers[2].address", "backend app server ghost", "nonexistent.invalid"),
        (11, "backends[1].servers[0].address", "backend more server ghost2", "ghost.invalid"),
    ]:
        problem = next(
            text
            for text in done.stderr.splitlines()
            if text.startswith(f"{path}:{line}: {field}: ")
        )
        assert f'{server}: cannot resolve "{name}"' in problem
        # what the resolver said, and what it asked
        assert "getaddrinfo: " in problem
        assert "/etc/hosts" in problem and "nsswitch.conf" in problem
    assert "2 problems that `bascule run` would refuse" in done.stderr
    # the name that resolves is shown with its address and what answered
    assert "backend app server local: localhost is " in done.stdout
    assert "answered by" in done.stdout

    run = bascule("run", "-c", str(path), timeout=60)
    assert run.returncode == 2
    assert (
        f"{path}:8: backends[0].servers[2].address: backend app server ghost: "
        'cannot resolve "nonexistent.invalid"' in run.stderr
    )

    elsewhere = bascule("validate", "-c", str(path), "--no-host")
    assert elsewhere.returncode == 0
    assert "OK: 1 frontend, 2 backends, 4 servers" in elsewhere.stdout


def test_validate_passes_names_that_resolve(tmp_path: Path) -> None:
    config = UNRESOLVABLE_SERVER.format(port=free_port()).replace(
        "nonexistent.invalid", "localhost"
    )
    path = write_config(tmp_path, config.replace("ghost.invalid", "127.0.0.2"))
    done = bascule("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert f"{path}: OK: 1 frontend, 2 backends, 4 servers" in done.stdout
    assert "backend app server ghost: localhost is 127.0.0.1" in done.stdout


# -- demo ------------------------------------------------------------------------------


def test_demo_survives_a_killed_server_and_reports_it() -> None:
    # Its own session, so that if it hangs the demo and every process it started
    # (backends, bascule run) can be killed together through its process group.
    options = ["--duration", "8", "--rate", "100", "--port", str(free_port())]
    started = time.monotonic()
    with session([sys.executable, "-m", "bascule", "demo", *options]) as demo:
        output, _ = demo.communicate(timeout=40)
    assert demo.returncode == 0, output
    assert time.monotonic() - started < 40
    assert re.search(r"^\s*requests failed   0\s*$", output, re.M), output
    assert re.search(r"^\s*s2 killed; Bascule took it out of rotation after \d+ ms", output, re.M)
    distribution = re.search(
        r"^\s*distribution\s+s1 (\d+) \([\d.]+%\), s2 (\d+) \([\d.]+%\), s3 (\d+) \([\d.]+%\)",
        output,
        re.M,
    )
    assert distribution, output
    assert all(int(count) > 0 for count in distribution.groups()), distribution.group(0)


VRRP_ON_MISSING_INTERFACE = """\
frontends:
  - {name: web, bind: "127.0.0.1:18999", default_backend: app}
backends:
  - name: app
    servers: [{name: s1, address: 127.0.0.1, port: 9001}]
vrrp:
  instances:
    - name: VI_1
      interface: bsc-no-such0
      virtual_router_id: 51
      priority: 150
      virtual_ipaddresses: ["198.18.0.100/24"]
"""


def test_validate_checks_vrrp_against_this_host_unless_told_not_to(tmp_path: Path) -> None:
    path = write_config(tmp_path, VRRP_ON_MISSING_INTERFACE)
    on_host = bascule("validate", "-c", str(path))
    assert on_host.returncode == 1
    assert f"{path}:9: vrrp.instances[0].interface:" in on_host.stderr
    assert 'no interface "bsc-no-such0" on this host' in on_host.stderr
    elsewhere = bascule("validate", "-c", str(path), "--no-host")
    assert elsewhere.returncode == 0 and "OK: " in elsewhere.stdout
    assert "1 vrrp instance" in elsewhere.stdout


def test_validate_refuses_ipv6_virtual_addresses_that_run_cannot_hold_yet(
    tmp_path: Path,
) -> None:
    config = VRRP_ON_MISSING_INTERFACE.replace(
        '["198.18.0.100/24"]', '["2001:db8::100/64"]'
    ).replace("priority: 150", "priority: 150\n      version: 3")
    path = write_config(tmp_path, config)
    done = bascule("validate", "-c", str(path), "--no-host")  # not a host matter
    assert done.returncode == 1, done.stdout
    assert (
        f"{path}:13: vrrp.instances[0].virtual_ipaddresses: vrrp instance 'VI_1': IPv6 virtual "
        "addresses are not supported by this version of the VRRP daemon yet"
    ) in done.stderr
    assert "1 problem that `bascule run` would refuse" in done.stderr


SELF_ROUTED = """\
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app}}
backends:
  - name: app
    servers: [{{name: s1, address: 127.0.0.1, port: {port}}}]
"""


def test_run_logs_the_same_warning_at_start(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # so that run stops right after its start-up checks
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        path = write_config(tmp_path, SELF_ROUTED.format(port=port))
        done = bascule("run", "-c", str(path))
    assert done.returncode == 2, done.stderr
    assert f'warning: 127.0.0.1:{port} is this node\'s own frontend "web"' in done.stderr
