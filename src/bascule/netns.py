"""Network-namespace topologies: hosts on one bridge, torn down always.

Used by `bascule demo --cluster`, the VRRP system tests and `bench/vip_failover.py`.

A `Topology` makes uniquely named namespaces: one "switch" holding a bridge `br0`, and
hosts each joined to it by a veth pair (`eth0` in the host, `p-<role>` on the bridge),
with addresses in 198.18.0.0/15 (IPv6: the benchmarking prefix 2001:2::/48, duplicate
address detection off so addresses are usable at once). Processes
started with `popen` are tracked; `close()` kills them, kills whatever else still runs in
our namespaces, and deletes the namespaces, even when the test failed. Use it through
`topology()` or the `topo` fixture of tests/system/conftest.py.

Namespace names are `bsc-<pid>-<token>-<role>`: the creator's PID tells a crashed run's
leftovers (`stale_namespaces`) from a live run's, so parallel test runs on one machine
leave each other alone. Interface names live inside the namespaces, so they are short,
fixed and readable (eth0, br0, p-a) without ever colliding with another run's.

Why the `ip` command rather than pyroute2 here: the harness must be independent of the
netlink adapter it tests (assertions read `ip -j addr`, not our own code), the
commands in a failure message can be pasted into a shell to inspect the topology, and
pyroute2 0.9's namespace support forks helper processes and cannot run its sync API
inside the tests' event loop. `ip -n NAME` runs inside a namespace without an extra exec.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any

PREFIX = "bsc-"
NETNS_DIR = Path("/run/netns")
HOST_IFNAME = "eth0"
BRIDGE = "br0"
_NAME = re.compile(r"bsc-(?P<pid>\d+)-(?P<token>[0-9a-f]{4})-(?P<role>[a-z0-9]+)")
_ROLE = re.compile(r"[a-z][a-z0-9]{0,12}")  # "p-" + role must fit in 15 characters
_CLONE_NEWNET = 0x40000000
_STOP_GRACE = 2.0  # seconds a tracked process gets to exit after SIGTERM
_START_SLACK = 1.0  # seconds of tolerance when comparing process and namespace ages


class CommandError(RuntimeError):
    """A harness command failed; the message holds the command line and its stderr."""


def _run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 10.0,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(
            f"`{' '.join(argv)}` exited with {result.returncode}: {result.stderr.strip()}"
        )
    return result


@dataclass
class Namespace:
    """One network namespace we created; run commands and start processes inside it."""

    name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 10.0,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` to completion inside the namespace (`ip netns exec`)."""
        argv = ["ip", "netns", "exec", self.name, *argv]
        return _run(argv, check=check, timeout=timeout, stdin=stdin, env=env)

    def ip(self, *args: str, check: bool = True) -> str:
        """`ip -n <ns> ARGS`; returns stdout."""
        return _run(["ip", "-n", self.name, *args], check=check).stdout

    def ip_json(self, *args: str) -> Any:
        """`ip -j -n <ns> ARGS`, decoded."""
        out = _run(["ip", "-j", "-n", self.name, *args]).stdout
        return json.loads(out) if out.strip() else []

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `argv` inside the namespace; the topology stops it at teardown.

        `ip netns exec` execs the command in place, so the PID is the command's own.
        """
        process = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)
        self.processes.append(process)
        return process

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into the namespace for the block, then back.

        Sockets opened inside the block belong to the namespace for their whole life,
        so a test can open an adapter here and use it anywhere. Keep the block short:
        everything the thread does in it happens in the namespace.
        """
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_DIR / self.name, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    yield
                finally:
                    _setns(home)
            finally:
                os.close(target)
        finally:
            os.close(home)


@dataclass(kw_only=True)
class Host(Namespace):
    """A namespace wired to the switch: `eth0` with `address` (and `address6`)."""

    address: IPv4Interface
    address6: IPv6Interface | None = None
    port: str  # the veth end on the bridge, in the switch namespace
    ifname: str = HOST_IFNAME

    @property
    def mac(self) -> str:
        return str(self.ip_json("link", "show", "dev", self.ifname)[0]["address"])

    def addresses(self) -> list[str]:
        """The interface's addresses as `ip` prints them: `198.18.0.10/24`."""
        shown = self.ip_json("addr", "show", "dev", self.ifname)
        return [f"{a['local']}/{a['prefixlen']}" for a in shown[0].get("addr_info", [])]

    def neighbour_mac(self, address: str) -> str | None:
        """The link-layer address this host has cached for `address`, if any."""
        for entry in self.ip_json("neigh", "show", "to", address, "dev", self.ifname):
            if "lladdr" in entry:
                return str(entry["lladdr"])
        return None


class Topology:
    """Namespaces of one test. Create hosts with `host()`, always `close()`."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(2)
        self.namespaces: list[Namespace] = []
        self._switch: Namespace | None = None

    def name_for(self, role: str) -> str:
        if not _ROLE.fullmatch(role):
            raise ValueError(f"role {role!r}: use 1 to 13 lowercase letters and digits")
        return f"{PREFIX}{os.getpid()}-{self.token}-{role}"

    def namespace(self, role: str) -> Namespace:
        """A bare namespace (loopback up), not connected to anything."""
        namespace = Namespace(self._add_netns(role))
        self.namespaces.append(namespace)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    @property
    def switch(self) -> Namespace:
        """The namespace holding the bridge, created on first use."""
        if self._switch is None:
            switch = self.namespace("sw")
            switch.ip("link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
            switch.ip("link", "set", BRIDGE, "up")
            self._switch = switch
        return self._switch

    def host(self, role: str, address: str, address6: str | None = None) -> Host:
        """A namespace whose `eth0` is a port of the switch's bridge, up, with addresses."""
        switch = self.switch
        host = Host(
            self._add_netns(role),
            address=IPv4Interface(address),
            port=f"p-{role}",
            address6=IPv6Interface(address6) if address6 else None,
        )
        self.namespaces.append(host)
        with host.entered():
            # Before eth0 exists, so it inherits it: no duplicate address detection,
            # IPv6 addresses are usable at once instead of tentative for a second.
            Path("/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0\n")
        veth = f"link add {host.port} type veth peer name {HOST_IFNAME} netns {host.name}"
        switch.ip(*veth.split())
        switch.ip("link", "set", host.port, "master", BRIDGE, "up")
        host.ip("link", "set", "lo", "up")
        host.ip("addr", "add", address, "dev", HOST_IFNAME)
        if address6:
            host.ip("addr", "add", address6, "dev", HOST_IFNAME, "nodad")
        host.ip("link", "set", HOST_IFNAME, "up")
        return host

    def _add_netns(self, role: str) -> str:
        name = self.name_for(role)
        _run(["ip", "netns", "add", name])
        return name

    def close(self) -> None:
        """Stop every process and delete every namespace; raise if something stayed."""
        problems: list[str] = []
        for namespace in reversed(self.namespaces):
            for process in namespace.processes:
                _stop(process)
        for namespace in reversed(self.namespaces):
            problems += _delete_namespace(namespace.name)
        self.namespaces.clear()
        self._switch = None
        if problems:
            raise CommandError("teardown left things behind: " + "; ".join(problems))

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    """A Topology that is torn down however the block ends."""
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(_STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(_STOP_GRACE)


def _delete_namespace(name: str) -> list[str]:
    problems = []
    # Whatever still runs in a namespace we made was started by this test, through a
    # process we launched there: kill it by PID, or the namespace outlives its name.
    listed = _run(["ip", "netns", "pids", name], check=False)
    for pid in (int(p) for p in listed.stdout.split()):
        if pid == os.getpid():
            # Only if a thread forgot to leave with `entered()`: never kill the test run.
            problems.append(f"the test process itself is still in {name}")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deleted = _run(["ip", "netns", "del", name], check=False)
    if deleted.returncode != 0 and (NETNS_DIR / name).exists():
        problems.append(f"ip netns del {name}: {deleted.stderr.strip()}")
    return problems


# -- crashed runs ------------------------------------------------------------------------------


def stale_namespaces() -> list[str]:
    """Our namespaces (`bsc-<pid>-<token>-<role>`) that a crashed run left behind.

    A namespace is stale when it is older than this process and the process that
    created it is gone (or its PID now belongs to a process started after the
    namespace). Namespaces of a run still in progress, ours or a parallel one, are kept.
    """
    if not NETNS_DIR.is_dir():
        return []
    me = _process_start(os.getpid())
    assert me is not None, "/proc/self/stat is unreadable"
    stale = []
    for path in sorted(NETNS_DIR.iterdir()):
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            created = path.stat().st_mtime  # the nsfs inode's birth: the namespace's
            if created < me and not _creator_alive(int(match["pid"]), created):
                stale.append(path.name)
    return stale


def remove_stale_namespaces() -> list[str]:
    """Delete the namespaces `stale_namespaces` finds; returns their names.

    Processes still running in them are left alone (they are not ours to kill): the
    namespace then lives on, unnamed, until they exit.
    """
    removed = []
    for name in stale_namespaces():
        if _run(["ip", "netns", "del", name], check=False).returncode == 0:
            removed.append(name)
    if removed:
        print(f"removed stale namespaces of crashed runs: {', '.join(removed)}", file=sys.stderr)
    return removed


def _creator_alive(pid: int, created: float) -> bool:
    started = _process_start(pid)
    return started is not None and started <= created + _START_SLACK


def _process_start(pid: int) -> float | None:
    """Wall-clock start time of `pid`, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22, counted after the ")" closing the command name (which may hold spaces).
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / os.sysconf("SC_CLK_TCK")


# -- setns -------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def wait_for(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `check` held, polling every 10 ms; None if it never did."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.01)
