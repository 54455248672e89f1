"""The raw VRRP socket on a real wire: namespaces on a bridge, and real keepalived.

Topology, built once for this module (root only)::

    bsv-<tag>-a  vrrp0 198.18.51.1/24 ─┐
    bsv-<tag>-b  vrrp0 198.18.51.2/24 ─┼─ br0 in bsv-<tag>-sw
    bsv-<tag>-c  vrrp0 198.18.51.3/24 ─┘   (c also has bare0: a bridge, down, no address)

Our sockets are opened from this process after switching the calling thread into a
namespace (`_inside`): a socket stays in the namespace it was made in, so one asyncio
loop drives sockets in a, b and c. keepalived runs in a through `ip netns exec` with its
own configuration, pid files and log in a temporary directory, and is stopped by PID.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.errors import StartupError
from bascule.vrrp.packet import (
    VRRP_MULTICAST_V4,
    Advert,
    Drop,
    DropReason,
    IPAddress,
    IPv4Packet,
    ReceiveRules,
    V3Checksum,
    decode,
    encode,
)
from bascule.vrrp.socket import (
    CAPABILITY_BITS,
    VrrpSocket,
    check_capabilities,
    require_capabilities,
)
from prerequisites import missing, needs

pytestmark = pytest.mark.system

KEEPALIVED = "/usr/sbin/keepalived"
INTERFACE = "vrrp0"
SUBNET = "198.18.51"
VIP = IPv4Address(f"{SUBNET}.100")
VRID = 51
V3_ADVERT = Advert.v3(vrid=VRID, priority=200, max_advert_int_cs=10, addresses=(VIP,))
V2_ADVERT = Advert.v2(vrid=VRID, priority=200, advert_int_s=1, addresses=(VIP,))
NEEDS_RAW = "needs CAP_NET_RAW (run as root or grant it with setcap/AmbientCapabilities)"


def _rules(advert: Advert, allowed_sources: frozenset[IPAddress] | None = None) -> ReceiveRules:
    return ReceiveRules(
        version=advert.version,
        vrid=advert.vrid,
        addresses=advert.addresses,
        advert_interval=advert.interval,
        allowed_sources=allowed_sources,
    )


def _decode(packet: IPv4Packet, rules: ReceiveRules) -> Advert | Drop:
    return decode(packet.payload, packet.src, packet.dst, packet.ttl, rules)


# --- a private network-namespace lab -----------------------------------------------------

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextmanager
def _inside(namespace: str) -> Iterator[None]:
    """Run the block with this thread in `namespace`; sockets made here stay there."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


class _Lab:
    """Three hosts a, b, c on one bridge, in namespaces named bsv-<tag>-*."""

    hosts = ("a", "b", "c")

    def __init__(self) -> None:
        self.tag = f"{os.getpid()}{secrets.token_hex(2)}"
        self.created: list[str] = []

    def ns(self, host: str) -> str:
        return f"bsv-{self.tag}-{host}"

    def address(self, host: str) -> IPv4Address:
        return IPv4Address(f"{SUBNET}.{self.hosts.index(host) + 1}")

    def ip(self, host: str, *args: str) -> str:
        result = subprocess.run(
            ["ip", "-n", self.ns(host), *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise RuntimeError(f"ip -n {self.ns(host)} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def addresses(self, host: str) -> set[IPv4Address]:
        listing = self.ip(host, "-4", "-o", "addr", "show", "dev", INTERFACE)
        return {IPv4Address(m) for m in re.findall(r"inet (\S+)/", listing)}

    def create(self) -> None:
        for host in ("sw", *self.hosts):
            subprocess.run(["ip", "netns", "add", self.ns(host)], check=True, timeout=10)
            self.created.append(self.ns(host))
        self.ip("sw", "link", "add", "br0", "type", "bridge")
        self.ip("sw", "link", "set", "dev", "br0", "up")
        for host in self.hosts:
            port = f"p{host}"
            self.ip(host, "link", "add", INTERFACE, "type", "veth", "peer", "name", port,
                    "netns", self.ns("sw"))  # fmt: skip
            self.ip("sw", "link", "set", "dev", port, "master", "br0", "up")
            self.ip(host, "addr", "add", f"{self.address(host)}/24", "dev", INTERFACE)
            self.ip(host, "link", "set", "dev", INTERFACE, "up")
        self.ip("c", "link", "add", "bare0", "type", "bridge")  # stays down, no address

    def destroy(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def lab() -> Iterator[_Lab]:
    if os.geteuid() != 0:
        missing("VRRP system tests need root (network namespaces and raw sockets)")
    if shutil.which("ip") is None:
        missing("VRRP system tests need iproute2's `ip`")
    lab = _Lab()
    try:
        lab.create()
        yield lab
    finally:
        lab.destroy()


class _Inbox:
    """Collects what a socket receives; `next` waits on the running loop."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[IPv4Packet] = asyncio.Queue()

    def put(self, packet: IPv4Packet) -> None:
        self.queue.put_nowait(packet)

    async def next(self, timeout: float = 2.0) -> IPv4Packet:
        return await asyncio.wait_for(self.queue.get(), timeout)


@contextmanager
def _vrrp_socket(
    lab: _Lab,
    host: str,
    interface: str = INTERFACE,
    unicast_peers: tuple[IPv4Address, ...] = (),
    source: IPv4Address | None = None,
) -> Iterator[tuple[VrrpSocket, _Inbox]]:
    inbox = _Inbox()
    with _inside(lab.ns(host)):
        vrrp_socket = VrrpSocket.open(
            interface, inbox.put, unicast_peers=unicast_peers, source=source
        )
    try:
        yield vrrp_socket, inbox
    finally:
        vrrp_socket.close()


def _plain_raw_socket(lab: _Lab, host: str, ttl: int) -> socket.socket:
    """A protocol 112 socket that is not ours, to send what a hostile router would."""
    with _inside(lab.ns(host)):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, INTERFACE.encode())
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    return raw


# --- our socket against our socket -------------------------------------------------------


@pytest.mark.parametrize("advert", [V3_ADVERT, V2_ADVERT], ids=["v3", "v2"])
async def test_multicast_advert_from_a_is_accepted_by_b_with_ttl_255(
    lab: _Lab, advert: Advert
) -> None:
    with _vrrp_socket(lab, "a") as (sender, sender_inbox), _vrrp_socket(lab, "b") as (_, inbox):
        assert sender.source == lab.address("a")
        assert sender.send_advert(advert) == ()
        packet = await inbox.next()
        assert (packet.src, packet.dst, packet.ttl) == (lab.address("a"), VRRP_MULTICAST_V4, 255)
        assert _decode(packet, _rules(advert)) == advert
        # Multicast loop is off: the sender does not hear itself as another router.
        assert sender_inbox.queue.empty()
        assert sender.stats.sent == 1


async def test_unicast_adverts_go_between_peers_only(lab: _Lab) -> None:
    a, b = lab.address("a"), lab.address("b")
    with (
        _vrrp_socket(lab, "a", unicast_peers=(b,), source=a) as (at_a, inbox_a),
        _vrrp_socket(lab, "b", unicast_peers=(a,)) as (at_b, inbox_b),
        _vrrp_socket(lab, "c") as (multicaster, _),
    ):
        assert at_b.source == b
        # A multicast advert is not for a unicast-mode socket; the first thing b gets is a's.
        assert multicaster.send_advert(V3_ADVERT) == ()
        assert at_a.send_advert(V3_ADVERT) == ()
        packet = await inbox_b.next()
        assert (packet.src, packet.dst, packet.ttl) == (a, b, 255)
        assert _decode(packet, _rules(V3_ADVERT, allowed_sources=frozenset({a}))) == V3_ADVERT

        assert at_b.send_advert(V2_ADVERT) == ()
        back = await inbox_a.next()
        assert (back.src, back.dst, back.ttl) == (b, a, 255)
        assert _decode(back, _rules(V2_ADVERT, allowed_sources=frozenset({b}))) == V2_ADVERT
        assert inbox_b.queue.empty()


async def test_advert_sent_with_ttl_1_is_received_then_dropped_for_ttl(lab: _Lab) -> None:
    c = lab.address("c")
    with _vrrp_socket(lab, "b") as (receiver, inbox), _plain_raw_socket(lab, "c", 1) as raw:
        raw.sendto(encode(V3_ADVERT, c, VRRP_MULTICAST_V4), (str(VRRP_MULTICAST_V4), 0))
        packet = await inbox.next()
        assert (packet.src, packet.ttl) == (c, 1)
        drop = _decode(packet, _rules(V3_ADVERT))
        assert isinstance(drop, Drop)
        assert drop.reason is DropReason.TTL
        receiver.stats.count_drop(drop)
        assert receiver.stats.drops == {DropReason.TTL: 1}
        # The same message at TTL 255 would have been accepted: only the TTL was wrong.
        assert _decode(packet._replace(ttl=255), _rules(V3_ADVERT)) == V3_ADVERT


async def test_send_failure_is_returned_not_raised(lab: _Lab) -> None:
    # bare0 is down: the kernel refuses to route the advert, which the daemon reports.
    with _vrrp_socket(lab, "c", "bare0", source=lab.address("c")) as (vrrp_socket, _):
        failures = vrrp_socket.send_advert(V3_ADVERT)
    assert [f.destination for f in failures] == [VRRP_MULTICAST_V4]
    assert str(failures[0]).startswith(f"cannot send VRRP advert to {VRRP_MULTICAST_V4}: ")
    assert (vrrp_socket.stats.sent, vrrp_socket.stats.send_errors) == (0, 1)


NOT_OURS = f"({VIP} is not an address of this host; fix unicast_source or add the address)"


@pytest.mark.parametrize(
    ("interface", "peers", "source", "message"),
    [
        ("nosuch0", (), None, "VRRP interface 'nosuch0' does not exist in this network namespace"),
        ("bare0", (), None, "VRRP on bare0: the interface has no IPv4 address to send adverts"),
        (INTERFACE, (IPv4Address(f"{SUBNET}.1"),), VIP, f"VRRP on vrrp0: cannot send from {VIP}"),
        (INTERFACE, (), VIP, f"VRRP on vrrp0: cannot send from {VIP}"),
    ],
    ids=["missing-interface", "no-address", "unicast-source-not-ours", "source-not-ours"],
)
async def test_startup_errors_say_what_is_wrong_and_leave_nothing_open(
    lab: _Lab,
    interface: str,
    peers: tuple[IPv4Address, ...],
    source: IPv4Address | None,
    message: str,
) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(StartupError) as error, _vrrp_socket(lab, "c", interface, peers, source):
        pass
    assert str(error.value).startswith(message)
    if source is not None:
        assert str(error.value).endswith(NOT_OURS)
    assert set(os.listdir("/proc/self/fd")) == before


_WITHOUT_NET_RAW = textwrap.dedent(
    """
    import asyncio, json, os
    from bascule.errors import StartupError
    from bascule.vrrp.socket import VrrpSocket, check_capabilities, require_capabilities

    async def main():
        report = {"missing": check_capabilities()}
        try:
            require_capabilities()
        except StartupError as exc:
            report["required"] = str(exc)
        before = sorted(os.listdir("/proc/self/fd"))
        try:
            VrrpSocket.open("lo", print)
        except StartupError as exc:
            report["open"] = str(exc)
        report["fds_left"] = sorted(os.listdir("/proc/self/fd")) != before
        print(json.dumps(report))

    asyncio.run(main())
    """
)


def test_without_cap_net_raw_open_refuses_and_names_the_capability() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        missing("needs root and setpriv to drop CAP_NET_RAW from a child process")
    drop_net_raw = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"]
    result = subprocess.run(
        [*drop_net_raw, sys.executable, "-c", _WITHOUT_NET_RAW],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report == {
        "missing": ["CAP_NET_RAW"],
        "required": "VRRP cannot send or receive adverts (raw IP protocol 112 socket): "
        + NEEDS_RAW,
        "open": "VRRP on lo: cannot open a raw socket for IP protocol 112: " + NEEDS_RAW,
        "fds_left": False,
    }


# --- capability parsing (no root needed) --------------------------------------------------


def _status(mask: int) -> str:
    return f"Name:\tbascule\nCapInh:\t0000000000000000\nCapEff:\t{mask:016x}\nCapBnd:\t0\n"


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_check_capabilities_names_exactly_the_cleared_bits(mask: int) -> None:
    expected = tuple(name for name, bit in CAPABILITY_BITS.items() if not mask & 1 << bit)
    assert check_capabilities(_status(mask)) == expected


def test_require_capabilities_names_both_when_both_are_missing() -> None:
    with pytest.raises(StartupError) as error:
        require_capabilities(_status(0))
    assert str(error.value) == (
        "VRRP cannot send adverts or manage virtual IPs: needs CAP_NET_ADMIN and CAP_NET_RAW "
        "(run as root or grant them with setcap/AmbientCapabilities)"
    )
    require_capabilities(_status(0x3000))  # both present: no error


def test_check_capabilities_without_capeff_line_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="no CapEff line in /proc/self/status"):
        check_capabilities("Name:\tbascule\n")


# --- keepalived interoperability ---------------------------------------------------------


def _keepalived_conf(version: int, state: str, priority: int) -> str:
    interval = "0.1" if version == 3 else "1"
    return textwrap.dedent(
        f"""
        global_defs {{
            router_id bsv_test
            vrrp_version {version}
        }}
        vrrp_instance VI_bsv {{
            state {state}
            interface {INTERFACE}
            virtual_router_id {VRID}
            priority {priority}
            advert_int {interval}
            virtual_ipaddress {{
                {VIP}/24
            }}
        }}
        """
    )


class _Keepalived:
    """One keepalived started by this test; stopped by PID, its VRRP child too."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path) -> None:
        self.process = process
        self.workdir = workdir

    @property
    def log(self) -> str:
        return (self.workdir / "keepalived.log").read_text(errors="replace")

    async def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if self.process.poll() is not None:
                pytest.fail(f"keepalived exited ({self.process.returncode}):\n{self.log}")
            if time.monotonic() > deadline:
                pytest.fail(f"keepalived did not log {text!r} within {timeout} s:\n{self.log}")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        # Read the child's PID first: the parent removes its pid file on the way out.
        child = re.search(r"Starting VRRP child process, pid=(\d+)", self.log)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if child is not None:
            self._kill_if_ours(int(child.group(1)))

    def _kill_if_ours(self, pid: int) -> None:
        """SIGKILL an orphaned VRRP child, after checking the PID was not reused."""
        with suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(self.workdir).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)


@contextmanager
def _keepalived(lab: _Lab, host: str, workdir: Path, conf: str) -> Iterator[_Keepalived]:
    config = workdir / "keepalived.conf"
    config.write_text(conf)
    command = [
        "ip", "netns", "exec", lab.ns(host), KEEPALIVED,
        "-n", "-l", "-D", "-G",  # foreground, log to the console in detail, not to syslog
        "-P", "-R",  # VRRP only; a dead child is not respawned behind our back
        "-f", str(config),
        "-p", str(workdir / "keepalived.pid"),
        "-r", str(workdir / "vrrp.pid"),
    ]  # fmt: skip
    with (workdir / "keepalived.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    keepalived = _Keepalived(process, workdir)
    try:
        yield keepalived
    finally:
        keepalived.stop()


needs_keepalived = needs(
    os.access(KEEPALIVED, os.X_OK), f"keepalived is not installed at {KEEPALIVED}"
)


@needs_keepalived
@pytest.mark.parametrize("advert", [V3_ADVERT, V2_ADVERT], ids=["v3", "v2"])
async def test_keepalived_master_adverts_are_accepted_by_decode(
    lab: _Lab, tmp_path: Path, advert: Advert
) -> None:
    conf = _keepalived_conf(advert.version, "MASTER", priority=200)
    with (
        _vrrp_socket(lab, "b") as (_, inbox),
        _keepalived(lab, "a", tmp_path, conf) as keepalived,
    ):
        # keepalived starts as BACKUP and sends nothing until its master-down timer
        # (3 intervals + skew) expires: the first packet is a MASTER advert.
        await keepalived.wait_for("Entering MASTER STATE", timeout=3 * advert.interval_seconds + 3)
        packets = [await inbox.next(timeout=2 * advert.interval_seconds + 1) for _ in range(2)]
    for packet in packets:
        assert (packet.src, packet.dst, packet.ttl) == (lab.address("a"), VRRP_MULTICAST_V4, 255)
        # Checksum, pseudo-header, lengths, interval and address list all match ours.
        assert _decode(packet, _rules(advert)) == advert


@needs_keepalived
@pytest.mark.parametrize("advert", [V3_ADVERT, V2_ADVERT], ids=["v3", "v2"])
async def test_keepalived_backup_obeys_our_adverts(
    lab: _Lab, tmp_path: Path, advert: Advert
) -> None:
    conf = _keepalived_conf(advert.version, "BACKUP", priority=100)
    master_down = 3 * advert.interval_seconds + (256 - 100) / 256 * advert.interval_seconds
    with _vrrp_socket(lab, "b") as (ours, _):
        advertiser = asyncio.create_task(_advertise(ours, advert))
        try:
            with _keepalived(lab, "a", tmp_path, conf) as keepalived:
                await keepalived.wait_for("Entering BACKUP STATE", timeout=5)
                # Longer than keepalived's master-down interval: it would be MASTER by now had it
                # not accepted our adverts.
                await asyncio.sleep(master_down + max(advert.interval_seconds, 0.5))
                assert VIP not in lab.addresses("a"), keepalived.log
                assert "Entering MASTER STATE" not in keepalived.log
                advertiser.cancel()
                # Priority 0 (we step down): keepalived takes over after skew time only,
                # which it does only if it accepted the packet.
                assert ours.send_advert(replace(advert, priority=0)) == ()
                await keepalived.wait_for("Backup received priority 0 advertisement", timeout=3)
                await keepalived.wait_for("Entering MASTER STATE", timeout=3)
                assert VIP in lab.addresses("a")
                assert "Invalid" not in keepalived.log
        finally:
            advertiser.cancel()
            with suppress(asyncio.CancelledError):
                await advertiser


async def _advertise(vrrp_socket: VrrpSocket, advert: Advert) -> None:
    while True:
        vrrp_socket.send_advert(advert)
        await asyncio.sleep(advert.interval_seconds)


@needs_keepalived
async def test_control_keepalived_rejects_a_wrong_checksum(lab: _Lab, tmp_path: Path) -> None:
    """The acceptance tests above can fail: a checksum keepalived does not expect is refused."""
    with _vrrp_socket(lab, "b") as (ours, _):
        advertiser = asyncio.create_task(_advertise_wrongly(ours))
        try:
            with _keepalived(lab, "a", tmp_path, _keepalived_conf(3, "BACKUP", 100)) as keepalived:
                await keepalived.wait_for("Invalid VRRPv3 checksum", timeout=3)
                await keepalived.wait_for("Entering MASTER STATE", timeout=3)
        finally:
            advertiser.cancel()
            with suppress(asyncio.CancelledError):
                await advertiser


async def _advertise_wrongly(vrrp_socket: VrrpSocket) -> None:
    while True:
        vrrp_socket.send_advert(V3_ADVERT, v3_checksum=V3Checksum.NO_PSEUDO_HEADER)
        await asyncio.sleep(V3_ADVERT.interval_seconds)
