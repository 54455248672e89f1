"""Announcing that a virtual IP moved: gratuitous ARP (IPv4) and unsolicited NA (IPv6).

When a node becomes VRRP master, the clients, routers and switches on the segment still
map the VIP to the old master's MAC address. This module owns the frames that correct
them and the AF_PACKET socket that sends them:

* IPv4: a gratuitous ARP *request* (RFC 5227 §3 calls it an ARP Announcement),
  broadcast, with sender IP = target IP = the VIP. Byte for byte what keepalived sends
  (target hardware address ff:ff:ff:ff:ff:ff, no padding), so captures of both daemons
  look alike and whatever works with keepalived works with us. Linux receivers update
  an existing entry for the VIP at once (arp_process treats sender == target as a
  gratuitous ARP and overrides the lock time).
* IPv6: an unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) from the VIP to
  all-nodes ff02::1, hop limit 255 (receivers drop ND packets with any other, §7.1.2),
  Override set and Solicited clear, with a Target Link-Layer Address option. The
  Router flag must tell the truth (§7.2.5: a router advertising R=0 gets dropped from
  hosts' default router lists), so the sender sets it when the interface forwards IPv6.

The frame builders are pure functions so their bytes can be checked in unit tests. We
build the frames by hand because no maintained library does only this (scapy is a large
dependency for 60 bytes); the layouts are fixed by the RFCs. Sending is a thin async
layer: one non-blocking socket per interface, `asyncio.sleep` between repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Final

from bascule.errors import StartupError
from bascule.vrrp.packet import internet_checksum

IPAddress = IPv4Address | IPv6Address

ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD
BROADCAST_MAC: Final = b"\xff" * 6
ALL_NODES: Final = IPv6Address("ff02::1")
# RFC 2464 §7: IPv6 multicast maps to 33:33 followed by the low 32 bits of the group.
ALL_NODES_MAC: Final = b"\x33\x33" + ALL_NODES.packed[-4:]

_ETHERNET: Final = struct.Struct("!6s6sH")
_ARP: Final = struct.Struct("!HHBBH6s4s6s4s")
_ARPHRD_ETHER: Final = 1
_ARPOP_REQUEST: Final = 1

_IPV6: Final = struct.Struct("!IHBB16s16s")
_IPPROTO_ICMPV6: Final = 58
_ND_HOP_LIMIT: Final = 255
_NA: Final = struct.Struct("!BBHI16sBB6s")  # type, code, checksum, flags, target, TLLA option
_ICMPV6_NEIGHBOR_ADVERT: Final = 136
_NA_ROUTER: Final = 0x80000000
_NA_OVERRIDE: Final = 0x20000000
_ND_OPT_TARGET_LLADDR: Final = 2
_ND_OPT_LEN_8_OCTETS: Final = 1  # option length in units of 8 octets: type, len, 6-octet MAC

_MAC_TEXT: Final = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_CAPABILITY_HINT: Final = (
    "Bascule needs the CAP_NET_RAW capability to send gratuitous ARP: run it as root, or "
    "grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)"
)


# -- MAC addresses -----------------------------------------------------------------------------


def parse_mac(text: str) -> bytes:
    """`"02:00:5e:00:01:0a"` -> 6 bytes; ValueError naming the bad text otherwise."""
    if not _MAC_TEXT.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a MAC address (expected six hex octets like 02:00:5e:00:01:0a)"
        )
    return bytes.fromhex(text.replace(":", ""))


def format_mac(octets: bytes) -> str:
    """6 bytes -> `"02:00:5e:00:01:0a"`."""
    return ":".join(f"{octet:02x}" for octet in octets)


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(mac)}: {mac.hex()}")


# -- frames (pure) -----------------------------------------------------------------------------


def gratuitous_arp_frame(ip: IPv4Address, mac: bytes) -> bytes:
    """The Ethernet frame of a gratuitous ARP request announcing that `ip` is at `mac`."""
    _check_mac(mac)
    ethernet = _ETHERNET.pack(BROADCAST_MAC, mac, ETH_P_ARP)
    arp = _ARP.pack(
        _ARPHRD_ETHER,
        ETH_P_IP,
        len(mac),
        4,
        _ARPOP_REQUEST,
        mac,
        ip.packed,
        BROADCAST_MAC,  # keepalived's choice; RFC 5227 says receivers ignore it
        ip.packed,
    )
    return ethernet + arp


def unsolicited_na_frame(ip: IPv6Address, mac: bytes, *, router: bool = False) -> bytes:
    """The Ethernet frame of an unsolicited Neighbor Advertisement: `ip` is at `mac`."""
    _check_mac(mac)
    flags = _NA_OVERRIDE | (_NA_ROUTER if router else 0)
    unsummed = _NA.pack(
        _ICMPV6_NEIGHBOR_ADVERT,
        0,
        0,
        flags,
        ip.packed,
        _ND_OPT_TARGET_LLADDR,
        _ND_OPT_LEN_8_OCTETS,
        mac,
    )
    checksum = internet_checksum(_icmpv6_pseudo_header(ip, ALL_NODES, len(unsummed)) + unsummed)
    icmp = unsummed[:2] + struct.pack("!H", checksum) + unsummed[4:]
    ipv6 = _IPV6.pack(
        6 << 28,  # version 6, traffic class 0, flow label 0
        len(icmp),
        _IPPROTO_ICMPV6,
        _ND_HOP_LIMIT,
        ip.packed,
        ALL_NODES.packed,
    )
    return _ETHERNET.pack(ALL_NODES_MAC, mac, ETH_P_IPV6) + ipv6 + icmp


def announcement_frame(ip: IPAddress, mac: bytes, *, router: bool = False) -> bytes:
    """The frame that moves `ip` to `mac`: gratuitous ARP for IPv4, unsolicited NA for IPv6."""
    if isinstance(ip, IPv4Address):
        return gratuitous_arp_frame(ip, mac)
    return unsolicited_na_frame(ip, mac, router=router)


def _icmpv6_pseudo_header(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    # RFC 8200 §8.1: source, destination, upper-layer length (32 bits), 3 zero octets, 58.
    return src.packed + dst.packed + struct.pack("!I3xB", length, _IPPROTO_ICMPV6)


def _ethertype(ip: IPAddress) -> int:
    return ETH_P_ARP if isinstance(ip, IPv4Address) else ETH_P_IPV6


# -- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    """How one burst went: frames handed to the kernel, and the first error if any.

    A failed send is an expected outcome (the link went down mid-burst), not an
    exception: the daemon journals it and goes on.
    """

    sent: int
    error: str = ""


class Announcer:
    """An AF_PACKET socket bound to one interface, sending announcement bursts.

    Open it at startup (`Announcer.open`) so a missing CAP_NET_RAW or a wrong interface
    stops the daemon before it takes part in an election. The socket is opened with
    protocol 0, so the kernel queues no received frames on it: we only ever send.
    """

    def __init__(self, sock: socket.socket, ifname: str, mac: bytes) -> None:
        self._sock = sock
        self.ifname = ifname
        self.mac = format_mac(mac)
        self._forwarding = _open_forwarding_flag(ifname)

    @classmethod
    def open(cls, ifname: str) -> Announcer:
        """Open and bind the socket (in the caller's network namespace)."""
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise StartupError(
                f"cannot open an AF_PACKET socket for gratuitous ARP on {ifname}: {exc.strerror}."
                f" {_CAPABILITY_HINT}"
            ) from exc
        try:
            sock.setblocking(False)
            sock.bind((ifname, 0))
            _, _, _, hardware_type, mac = sock.getsockname()
        except OSError as exc:
            sock.close()
            raise _bind_error(ifname, exc) from exc
        if hardware_type != _ARPHRD_ETHER:
            sock.close()
            raise StartupError(
                f"{ifname} has no Ethernet address, so gratuitous ARP cannot work there: VRRP"
                " needs an Ethernet-like interface (not a tunnel or loopback)"
            )
        return cls(sock, ifname, mac)

    def close(self) -> None:
        self._sock.close()
        if self._forwarding is not None:
            os.close(self._forwarding)
            self._forwarding = None

    def __enter__(self) -> Announcer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def announce(
        self,
        ips: Iterable[IPAddress],
        *,
        count: int = 1,
        interval: float = 0.0,
        mac: str | None = None,
        already_sent: int = 0,
    ) -> AnnounceResult:
        """Send `count` rounds, `interval` seconds apart, of one frame per address in `ips`.

        `mac` defaults to the interface's own address (keepalived does the same unless a
        virtual MAC is configured). `already_sent` rounds went out by `send_now`: the
        burst goes on from there, the next round `interval` later.
        """
        frames = self._frames(list(ips), mac)
        sent = 0
        for round_number in range(already_sent, count):
            if round_number and interval > 0:
                await asyncio.sleep(interval)
            for frame, ethertype in frames:
                error = await self._send(frame, ethertype)
                if error:
                    return AnnounceResult(sent, error)
                sent += 1
        return AnnounceResult(sent)

    def send_now(self, ips: Iterable[IPAddress]) -> AnnounceResult:
        """One round, in this call: the first round of a takeover's burst.

        A full send buffer ends it early (the result says so) instead of waiting.
        """
        sent = 0
        for frame, ethertype in self._frames(list(ips), None):
            try:
                self._sock.sendto(frame, (self.ifname, ethertype))
            except OSError as exc:
                return AnnounceResult(sent, f"sending on {self.ifname} failed: {exc.strerror}")
            sent += 1
        return AnnounceResult(sent)

    def _frames(self, addresses: list[IPAddress], mac: str | None) -> list[tuple[bytes, int]]:
        octets = parse_mac(mac if mac is not None else self.mac)
        router = any(ip.version == 6 for ip in addresses) and self._forwards_ipv6()
        return [(announcement_frame(ip, octets, router=router), _ethertype(ip)) for ip in addresses]

    def _forwards_ipv6(self) -> bool:
        # Read per burst, not once: an operator may turn forwarding on while we run.
        if self._forwarding is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            return int(os.pread(self._forwarding, 8, 0)) == 1
        return False

    async def _send(self, frame: bytes, ethertype: int) -> str:
        # The address carries the ethertype so the kernel sets skb->protocol right for
        # qdiscs and offloads, whatever protocol the socket was opened with.
        address = (self.ifname, ethertype)
        try:
            try:
                self._sock.sendto(frame, address)
            except BlockingIOError:
                await self._writable()
                self._sock.sendto(frame, address)
        except OSError as exc:
            return f"sending on {self.ifname} failed: {exc.strerror or exc}"
        return ""

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_writer(fd, wake)
        try:
            await ready
        finally:
            loop.remove_writer(fd)


async def send_gratuitous_arp(
    ifname: str,
    ip: IPAddress,
    mac: str | None = None,
    count: int = 1,
    interval: float = 0.0,
) -> AnnounceResult:
    """One-shot: open a socket on `ifname`, announce `ip` (ARP or NA by family), close."""
    with Announcer.open(ifname) as announcer:
        return await announcer.announce([ip], count=count, interval=interval, mac=mac)


def _bind_error(ifname: str, exc: OSError) -> StartupError:
    if exc.errno in (errno.ENODEV, errno.ENXIO):
        return StartupError(
            f"cannot send gratuitous ARP on {ifname}: no such interface in this network "
            "namespace; check the vrrp instance's `interface` (ip link lists the names)"
        )
    if exc.errno == errno.EPERM:
        return StartupError(f"cannot bind to {ifname} for gratuitous ARP. {_CAPABILITY_HINT}")
    return StartupError(f"cannot bind an AF_PACKET socket to {ifname}: {exc.strerror or exc}")


def _open_forwarding_flag(ifname: str) -> int | None:
    # Opened with the socket, so it reads this namespace's flag wherever we run later;
    # None when IPv6 is off on the interface.
    path = Path("/proc/sys/net/ipv6/conf") / ifname / "forwarding"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
