"""VRRP I/O adapters against a real kernel: VIPs, leftovers, link events, GARP, capabilities.

Each test builds hosts on a bridge in fresh network namespaces (src/bascule/netns.py) and
checks what an operator or a client would see: `ip addr` in the namespace, a client's
neighbour cache, datagrams reaching the new master, the error text without privileges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from pathlib import Path

import pytest

from bascule import netns
from bascule.errors import StartupError
from bascule.netns import Host, Topology
from bascule.vrrp.arp import ETH_P_IPV6, Announcer
from bascule.vrrp.netlink import (
    LeftoverCleanup,
    LinkState,
    Netlink,
    VipConflictError,
    in_any_subnet,
)

VIP = IPv4Interface("198.18.0.10/24")
VIP6 = IPv6Interface("2001:2::10/64")
OLD_MAC = "02:00:5e:00:01:99"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def host_a(topo: Topology) -> Host:
    return topo.host("a", "198.18.0.1/24", "2001:2::1/64")


@pytest.fixture
async def netlink_a(host_a: Host) -> AsyncIterator[Netlink]:
    with host_a.entered():
        netlink = Netlink.open()
    try:
        yield netlink
    finally:
        netlink.close()


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `check` every 10 ms until it holds or `timeout` seconds pass."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def run_python_in(host: Host, code: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new Python process inside `host`, after the `prefix` command."""
    argv = [*prefix, sys.executable, "-c", textwrap.dedent(code)]
    return host.run(argv, check=False, timeout=20, env={**os.environ, "PYTHONPATH": SRC})


# -- VIPs -----------------------------------------------------------------------------------


async def test_added_vip_shows_in_ip_addr_labelled_and_removal_takes_it_off(
    host_a: Host, netlink_a: Netlink
) -> None:
    assert await netlink_a.add_vip("eth0", VIP) is True
    shown = host_a.ip_json("addr", "show", "dev", "eth0")[0]["addr_info"]
    assert {"local": "198.18.0.10", "prefixlen": 24, "label": "eth0:vrrp"}.items() <= next(
        a for a in shown if a["local"] == "198.18.0.10"
    ).items()
    assert await netlink_a.has_vip("eth0", VIP)

    assert await netlink_a.remove_vip("eth0", VIP) is True
    assert "198.18.0.10/24" not in host_a.addresses()
    assert not await netlink_a.has_vip("eth0", VIP)


async def test_ipv6_vip_is_usable_at_once(host_a: Host, netlink_a: Netlink) -> None:
    assert await netlink_a.add_vip("eth0", VIP6) is True
    shown = host_a.ip_json("-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
    vip = next(a for a in shown if a["local"] == "2001:2::10")
    assert not vip.get("tentative") and not vip.get("dadfailed")
    assert await netlink_a.remove_vip("eth0", VIP6) is True
    assert "2001:2::10/64" not in host_a.addresses()


async def test_adding_twice_or_removing_twice_is_not_an_error(
    host_a: Host, netlink_a: Netlink
) -> None:
    assert await netlink_a.add_vip("eth0", VIP) is True
    assert await netlink_a.add_vip("eth0", VIP) is False
    assert host_a.addresses().count("198.18.0.10/24") == 1
    assert await netlink_a.remove_vip("eth0", VIP) is True
    assert await netlink_a.remove_vip("eth0", VIP) is False


async def test_same_address_with_another_prefix_is_reported_and_left_alone(
    host_a: Host, netlink_a: Netlink
) -> None:
    host_a.ip("addr", "add", "198.18.0.10/16", "dev", "eth0")
    with pytest.raises(VipConflictError, match=r"198\.18\.0\.10/16.*ip addr del"):
        await netlink_a.add_vip("eth0", VIP)
    with pytest.raises(VipConflictError, match=r"198\.18\.0\.10/16"):
        await netlink_a.remove_vip("eth0", VIP)
    assert "198.18.0.10/16" in host_a.addresses()
    assert "198.18.0.10/24" not in host_a.addresses()


async def test_interface_facts_match_ip_link_and_ip_addr(host_a: Host, netlink_a: Netlink) -> None:
    assert await netlink_a.mac_address("eth0") == host_a.mac
    assert await netlink_a.link_state("eth0") is LinkState.UP
    addresses = await netlink_a.interface_addresses("eth0")
    assert ip_interface("198.18.0.1/24") in {a.interface for a in addresses}
    assert not any(a.ours for a in addresses)
    assert in_any_subnet(VIP, addresses)
    assert not in_any_subnet(ip_interface("198.19.5.5/24"), addresses)


async def test_missing_interface_is_named_with_what_to_check(netlink_a: Netlink) -> None:
    with pytest.raises(StartupError, match=r"interface 'nope0' does not exist.*ip link"):
        await netlink_a.add_vip("nope0", VIP)


# -- leftovers of a crashed run -------------------------------------------------------------


async def test_cleanup_removes_only_the_vips_a_crashed_run_added(
    host_a: Host, netlink_a: Netlink
) -> None:
    # A run adds two VIPs and dies without removing them.
    crashed = run_python_in(
        host_a,
        """
        import asyncio, ipaddress, os
        from bascule.vrrp.netlink import Netlink

        async def main():
            netlink = Netlink.open()
            for vip in ("198.18.0.10/24", "2001:2::10/64", "198.18.0.13/24"):
                await netlink.add_vip("eth0", ipaddress.ip_interface(vip))
            os._exit(0)  # no close, no cleanup: a crash

        asyncio.run(main())
        """,
    )
    assert crashed.returncode == 0, crashed.stderr
    # The administrator configured the same address as a VIP, statically.
    host_a.ip("addr", "add", "198.18.0.11/24", "dev", "eth0")

    result = await netlink_a.cleanup_leftovers("eth0", [VIP, VIP6, ip_interface("198.18.0.11/24")])

    assert result == LeftoverCleanup(
        removed=(VIP, VIP6),
        foreign=(ip_interface("198.18.0.11/24"),),
        stray=(ip_interface("198.18.0.13/24"),),
    )
    assert set(host_a.addresses()) >= {"198.18.0.1/24", "198.18.0.11/24", "198.18.0.13/24"}
    assert "198.18.0.10/24" not in host_a.addresses()
    assert "2001:2::10/64" not in host_a.addresses()


# -- link events ----------------------------------------------------------------------------


async def test_link_down_and_up_are_reported_once_each(
    topo: Topology, host_a: Host, netlink_a: Netlink
) -> None:
    events: asyncio.Queue[tuple[str, LinkState]] = asyncio.Queue()
    current = await netlink_a.watch_links(lambda name, state: events.put_nowait((name, state)))
    assert current["eth0"] is LinkState.UP

    async def next_event() -> tuple[str, LinkState]:
        return await asyncio.wait_for(events.get(), 2.0)

    topo.switch.ip("link", "set", host_a.port, "down")  # the cable is pulled
    assert await next_event() == ("eth0", LinkState.DOWN)
    topo.switch.ip("link", "set", host_a.port, "up")
    assert await next_event() == ("eth0", LinkState.UP)
    host_a.ip("link", "set", "eth0", "down")  # the administrator downs it
    assert await next_event() == ("eth0", LinkState.DOWN)
    host_a.ip("link", "set", "eth0", "up")
    assert await next_event() == ("eth0", LinkState.UP)

    host_a.ip("link", "set", "eth0", "mtu", "1400")  # a change that is not up/down
    await asyncio.sleep(0.2)
    assert events.empty()

    topo.switch.ip("link", "del", host_a.port)  # deleting one end deletes eth0 too
    assert await next_event() == ("eth0", LinkState.DOWN)


async def test_a_flood_of_link_events_does_not_lose_the_final_state(
    host_a: Host, netlink_a: Netlink
) -> None:
    events: list[tuple[str, LinkState]] = []
    await netlink_a.watch_links(lambda name, state: events.append((name, state)))
    # Thousands of updates while the loop is blocked overflow the event socket (ENOBUFS),
    # and the kernel drops events, probably the last one: the link going down.
    flood = "".join(f"link set eth0 mtu {1280 + i % 200}\n" for i in range(6000))
    host_a.run(["ip", "-batch", "-"], stdin=flood + "link set eth0 down\n")
    assert await eventually(lambda: ("eth0", LinkState.DOWN) in events)
    assert events == [("eth0", LinkState.DOWN)]


# -- gratuitous ARP and unsolicited NA ------------------------------------------------------


async def test_garp_moves_a_clients_arp_entry_to_the_new_master(
    topo: Topology, host_a: Host, netlink_a: Netlink
) -> None:
    old_master = topo.host("old", "198.18.0.3/24")
    client = topo.host("client", "198.18.0.2/24")
    old_master.ip("addr", "add", str(VIP), "dev", "eth0")
    send_udp(client, VIP.ip)  # the client resolves the VIP to the old master
    assert await eventually(lambda: client.neighbour_mac("198.18.0.10") == old_master.mac)

    # Failover: the old master is gone, the new one takes the VIP and announces it.
    old_master.ip("addr", "del", str(VIP), "dev", "eth0")
    await netlink_a.add_vip("eth0", VIP)
    with host_a.entered():
        announcer = Announcer.open("eth0")
    with announcer, receiver(host_a, VIP.ip) as inbox:
        result = await announcer.announce([VIP.ip], count=2, interval=0.01)
        assert result.sent == 2 and not result.error
        assert await eventually(lambda: client.neighbour_mac("198.18.0.10") == host_a.mac)
        send_udp(client, VIP.ip)
        assert await eventually(lambda: receive(inbox) == b"hello")


async def test_unsolicited_na_moves_a_clients_neighbour_entry(
    topo: Topology, host_a: Host, netlink_a: Netlink
) -> None:
    client = topo.host("client", "198.18.0.2/24", "2001:2::2/64")
    vip = str(VIP6.ip)
    client.ip("-6", "neigh", "replace", vip, "lladdr", OLD_MAC, "dev", "eth0", "nud", "stale")
    assert client.neighbour_mac(vip) == OLD_MAC

    await netlink_a.add_vip("eth0", VIP6)
    with host_a.entered():
        announcer = Announcer.open("eth0")
    with announcer:  # the socket stays in host a's namespace after we leave it
        result = await announcer.announce([VIP6.ip])
    assert result.sent == 1 and not result.error
    # The client's kernel drops an NA with a wrong checksum or hop limit: this also
    # checks those.
    assert await eventually(lambda: client.neighbour_mac(vip) == host_a.mac)


async def test_na_carries_the_router_flag_once_the_master_forwards_ipv6(
    topo: Topology, host_a: Host
) -> None:
    client = topo.host("client", "198.18.0.2/24", "2001:2::2/64")
    with client.entered():
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    with host_a.entered():
        announcer = Announcer.open("eth0")
    with sniffer, announcer:
        sniffer.bind(("eth0", 0))
        sniffer.setblocking(False)
        assert (await announcer.announce([VIP6.ip])).sent == 1
        with host_a.entered():  # turned on while we run: read at each burst
            Path("/proc/sys/net/ipv6/conf/eth0/forwarding").write_text("1\n")
        assert (await announcer.announce([VIP6.ip])).sent == 1
        adverts: list[bytes] = []
        await eventually(lambda: len(collect_adverts(sniffer, VIP6.ip, adverts)) >= 2)
    router_flags = [bool(advert[4] & 0x80) for advert in adverts]
    assert router_flags == [False, True]


# -- privileges -----------------------------------------------------------------------------


def test_without_capabilities_the_errors_name_the_missing_one(host_a: Host) -> None:
    drop = ("setpriv", "--inh-caps=-net_admin,-net_raw", "--bounding-set=-net_admin,-net_raw")
    result = run_python_in(
        host_a,
        """
        import asyncio, ipaddress
        from bascule.errors import StartupError
        from bascule.vrrp.arp import ETH_P_IPV6, Announcer
        from bascule.vrrp.netlink import Netlink

        async def main():
            with Netlink.open() as netlink:
                try:
                    await netlink.add_vip("eth0", ipaddress.ip_interface("198.18.0.10/24"))
                except StartupError as exc:
                    print(exc)
            try:
                Announcer.open("eth0")
            except StartupError as exc:
                print(exc)

        asyncio.run(main())
        """,
        *drop,
    )
    assert result.returncode == 0, result.stderr
    netlink_line, arp_line = result.stdout.splitlines()
    assert "cannot add 198.18.0.10/24 on eth0: operation not permitted" in netlink_line
    assert "CAP_NET_ADMIN capability" in netlink_line
    assert "CAP_NET_RAW capability" in arp_line
    assert "198.18.0.10/24" not in host_a.addresses()


def test_announcer_refuses_a_missing_or_non_ethernet_interface(host_a: Host) -> None:
    with host_a.entered(), pytest.raises(StartupError, match="nope0: no such interface"):
        Announcer.open("nope0")
    with host_a.entered(), pytest.raises(StartupError, match="lo has no Ethernet address"):
        Announcer.open("lo")


# -- the harness itself -----------------------------------------------------------------------


def test_teardown_kills_processes_and_deletes_namespaces_after_a_failure() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), netns.topology() as topo:
        host = topo.host("a", "198.18.0.1/24")
        sleeper = host.popen(["sleep", "30"])
        names = [n.name for n in topo.namespaces]
        raise RuntimeError("the test failed")
    assert sleeper.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)


def test_stale_namespaces_are_those_of_dead_runs_only(topo: Topology) -> None:
    live = topo.namespace("live")
    finished = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    crashed = f"bsc-{dead_pid}-0bad-a"
    not_ours = f"bsc-{dead_pid}-somebody-else"
    for name in (crashed, not_ours):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # Only namespaces older than the looking process count: look from a new process,
        # started clearly later (process start times have a 10 ms resolution).
        time.sleep(0.05)
        found = subprocess.run(
            [sys.executable, "-c", "from bascule import netns; print(netns.stale_namespaces())"],
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert crashed in found
        assert live.name not in found
        assert not_ours not in found
    finally:
        for name in (crashed, not_ours):
            subprocess.run(["ip", "netns", "del", name], check=False)


# -- helpers --------------------------------------------------------------------------------


def send_udp(host: Host, ip: IPv4Address | IPv6Address, port: int = 9999) -> None:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with host.entered():
        sock = socket.socket(family, socket.SOCK_DGRAM)
    with sock:
        sock.sendto(b"hello", (str(ip), port))


@contextlib.contextmanager
def receiver(host: Host, ip: IPv4Address, port: int = 9999) -> Iterator[socket.socket]:
    with host.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        sock.bind((str(ip), port))
        yield sock


def collect_adverts(sniffer: socket.socket, target: IPv6Address, into: list[bytes]) -> list[bytes]:
    """Append to `into` the ICMPv6 part of every NA for `target` the sniffer has queued."""
    while frame := receive(sniffer, 2048):
        icmp = frame[14 + 40 :]
        if frame[14 + 6] == 58 and icmp[0] == 136 and icmp[8:24] == target.packed:
            into.append(icmp)
    return into


def receive(sock: socket.socket, size: int = 100) -> bytes:
    try:
        return sock.recv(size)
    except BlockingIOError:
        return b""
