"""The raw IPv4 VRRP socket: adverts on and off the wire, one interface per socket.

This module owns the operating-system side of VRRP traffic: the raw IP protocol 112
socket bound to an interface, its multicast membership (224.0.0.18) or unicast peers,
the source address adverts carry, TTL 255 on everything sent (RFC 5798 §5.1.1.3), and
translating socket failures into `StartupError` once, at startup. It also reports which
capabilities VRRP needs and the process lacks, so `bascule run` can refuse before it
starts anything.

What the bytes mean is `packet.py`'s business; this adapter only moves them. Received
datagrams arrive with their IPv4 header, are split by `packet.parse_ipv4`, and the
`IPv4Packet` (source, destination, TTL, VRRP payload) goes to the caller's callback, which
runs `packet.decode` with its instance's `ReceiveRules`.

Drop counting: `SocketStats.drops` counts dropped packets by `DropReason`. The socket
itself counts what it drops before the callback (a malformed IPv4 header); the caller
counts what `packet.decode` refuses with `stats.count_drop(drop)`, so one counter per
socket holds every drop on that interface. Every raw socket sees every protocol 112
packet on its interface, so run one socket per VRRP instance and expect other VRIDs'
adverts to be counted as `vrid` drops, or share one socket per interface and pick the
instance with `packet.peek_vrid` before decoding.

Everything is non-blocking on the caller's asyncio loop (`loop.add_reader`), no threads.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import re
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Final

from bascule.errors import StartupError
from bascule.vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_PROTOCOL,
    VRRP_TTL,
    Advert,
    Drop,
    DropReason,
    IPv4Packet,
    V3Checksum,
    encode,
    parse_ipv4,
)

log = logging.getLogger(__name__)

PacketHandler = Callable[[IPv4Packet], None]

# Capability numbers from linux/capability.h; /proc/self/status shows CapEff as a hex mask.
CAPABILITY_BITS: Final = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}
_CAPABILITY_USES: Final = {
    ("CAP_NET_ADMIN",): "cannot add or remove virtual IPs",
    ("CAP_NET_RAW",): "cannot send or receive adverts (raw IP protocol 112 socket)",
    ("CAP_NET_ADMIN", "CAP_NET_RAW"): "cannot send adverts or manage virtual IPs",
}
_PROC_STATUS: Final = "/proc/self/status"

# linux/sockios.h: the interface's first (primary) IPv4 address. Hand-written because it is
# one ioctl on the socket we already hold, while pyroute2's synchronous IPRoute cannot run
# inside a running asyncio loop and its import alone costs a third of a second.
_SIOCGIFADDR: Final = 0x8915
_IFREQ: Final = struct.Struct("16s24x")  # ifr_name, then the ifr_addr union
_IFREQ_ADDR: Final = slice(20, 24)  # sockaddr_in.sin_addr inside the union
_IP_MREQN: Final = struct.Struct("4s4si")  # imr_multiaddr, imr_address, imr_ifindex

# A VRRP advert is at most 60 (IP header) + 8 + 255 * 16 octets; a datagram longer than
# the buffer is truncated and then dropped by `parse_ipv4` as a length error.
_RECEIVE_BUFFER: Final = 65535
# Bound the work per wakeup so a flood on one interface cannot starve the rest of the loop.
_MAX_PACKETS_PER_WAKEUP: Final = 64


# --- capabilities -----------------------------------------------------------------------


def check_capabilities(proc_status: str | None = None) -> tuple[str, ...]:
    """Names of the capabilities VRRP needs (CAP_NET_ADMIN, CAP_NET_RAW) that are missing.

    Reads the effective set from /proc/self/status, or from `proc_status` (its text) when
    given. An empty tuple means VRRP can run.
    """
    text = proc_status if proc_status is not None else _read_proc_status()
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", text, re.MULTILINE)
    if match is None:
        raise StartupError(
            f"cannot tell this process's capabilities: no CapEff line in {_PROC_STATUS} "
            f"(VRRP needs Linux with /proc mounted)"
        )
    effective = int(match.group(1), 16)
    return tuple(name for name, bit in CAPABILITY_BITS.items() if not effective >> bit & 1)


def capability_message(missing: tuple[str, ...]) -> str:
    """The sentence telling an operator which capabilities VRRP lacks and how to grant them."""
    names = " and ".join(missing)
    pronoun = "it" if len(missing) == 1 else "them"
    uses = _CAPABILITY_USES.get(missing, "cannot run")
    return (
        f"VRRP {uses}: needs {names} "
        f"(run as root or grant {pronoun} with setcap/AmbientCapabilities)"
    )


def require_capabilities(proc_status: str | None = None) -> None:
    """Raise `StartupError` naming every capability VRRP needs and the process lacks."""
    missing = check_capabilities(proc_status)
    if missing:
        raise StartupError(capability_message(missing))


def _read_proc_status() -> str:
    try:
        with open(_PROC_STATUS, encoding="ascii") as status:
            return status.read()
    except OSError as exc:
        raise StartupError(
            f"cannot read {_PROC_STATUS} to check capabilities: {exc.strerror or exc}"
        ) from None


# --- statistics -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendFailure:
    """An advert that did not leave for one destination; the daemon reports it."""

    destination: IPv4Address
    reason: str

    def __str__(self) -> str:
        return f"cannot send VRRP advert to {self.destination}: {self.reason}"


@dataclass(slots=True)
class SocketStats:
    """Counters for one socket; `drops` is keyed by `DropReason` (the metric label)."""

    received: int = 0
    receive_errors: int = 0
    sent: int = 0
    send_errors: int = 0
    drops: Counter[DropReason] = field(default_factory=Counter)

    def count_drop(self, drop: Drop) -> None:
        """Count a packet refused by `parse_ipv4` or `packet.decode`."""
        self.drops[drop.reason] += 1


# --- the socket -------------------------------------------------------------------------


class VrrpSocket:
    """A raw IPv4 protocol 112 socket on one interface, read through the asyncio loop.

    Multicast mode (no unicast peers): joined to 224.0.0.18 on the interface, adverts go
    to the group. Unicast mode: bound to the source address, adverts go to each peer and
    only packets addressed to the source are received. Either way the source is `source`
    (keepalived's `unicast_src_ip` / `mcast_src_ip`) or the interface's primary IPv4
    address at open time, and TTL is 255.

    Create with `VrrpSocket.open` inside a running loop; `close` when done.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        interface: str,
        ifindex: int,
        source: IPv4Address,
        unicast_peers: tuple[IPv4Address, ...],
        on_packet: PacketHandler,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.interface = interface
        self.ifindex = ifindex
        self.source = source
        self.unicast_peers = unicast_peers
        self.stats = SocketStats()
        self._sock = sock
        self._on_packet = on_packet
        self._loop = loop
        self._buffer = bytearray(_RECEIVE_BUFFER)
        self._closed = False

    @classmethod
    def open(
        cls,
        interface: str,
        on_packet: PacketHandler,
        *,
        unicast_peers: tuple[IPv4Address, ...] = (),
        source: IPv4Address | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> VrrpSocket:
        """Open, configure and start reading, or raise `StartupError` with nothing left open.

        `on_packet` is called on the loop with each received packet whose IPv4 header is
        sane; it must not block. Call from the network namespace the interface lives in.
        """
        loop = loop or asyncio.get_running_loop()
        sock = _open_raw_socket(interface)
        try:
            ifindex, chosen_source = _configure(sock, interface, unicast_peers, source)
            vrrp_socket = cls(
                sock,
                interface=interface,
                ifindex=ifindex,
                source=chosen_source,
                unicast_peers=unicast_peers,
                on_packet=on_packet,
                loop=loop,
            )
            loop.add_reader(sock.fileno(), vrrp_socket._on_readable)
        except BaseException:
            sock.close()
            raise
        mode = f"unicast to {', '.join(map(str, unicast_peers))}" if unicast_peers else "multicast"
        log.info("VRRP socket on %s (%s) from %s", interface, mode, chosen_source)
        return vrrp_socket

    @property
    def destinations(self) -> tuple[IPv4Address, ...]:
        """Where `send_advert` sends: the unicast peers, or the VRRP multicast group."""
        return self.unicast_peers or (VRRP_MULTICAST_V4,)

    def send_advert(
        self, advert: Advert, *, v3_checksum: V3Checksum = V3Checksum.PSEUDO_HEADER
    ) -> tuple[SendFailure, ...]:
        """Send `advert` to every destination; the destinations it did not reach, and why.

        Takes the `Advert` rather than bytes because a v3 checksum covers the destination
        address, so each unicast peer gets its own encoding. A failed send (interface
        down, a firewall rule, a full buffer) is an outcome the daemon reports, not an
        exception: the next advert interval tries again.
        """
        failures = []
        for destination in self.destinations:
            payload = encode(advert, self.source, destination, v3_checksum=v3_checksum)
            try:
                self._sock.sendto(payload, (str(destination), 0))
            except BlockingIOError:
                failures.append(SendFailure(destination, "socket send buffer full"))
            except OSError as exc:
                failures.append(SendFailure(destination, exc.strerror or str(exc)))
        self.stats.sent += len(self.destinations) - len(failures)
        self.stats.send_errors += len(failures)
        return tuple(failures)

    def close(self) -> None:
        """Stop reading and close the socket (leaving the multicast group). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _on_readable(self) -> None:
        for _ in range(_MAX_PACKETS_PER_WAKEUP):
            try:
                size = self._sock.recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Raw sockets report asynchronous errors (e.g. ICMP for a unicast peer)
                # on the next read; one bad read must not stop the others.
                self.stats.receive_errors += 1
                log.warning("VRRP socket on %s: receive failed: %s", self.interface, exc)
                return
            self._deliver(bytes(memoryview(self._buffer)[:size]))

    def _deliver(self, datagram: bytes) -> None:
        self.stats.received += 1
        parsed = parse_ipv4(datagram)
        if isinstance(parsed, Drop):
            self.stats.count_drop(parsed)
            log.debug("VRRP socket on %s: %s", self.interface, parsed)
            return
        self._on_packet(parsed)


# --- opening: every foreign error becomes one StartupError ------------------------------


def _open_raw_socket(interface: str) -> socket.socket:
    with _startup_errors(interface, "open a raw socket for IP protocol 112"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
    sock.setblocking(False)
    return sock


def _configure(
    sock: socket.socket,
    interface: str,
    unicast_peers: tuple[IPv4Address, ...],
    source: IPv4Address | None,
) -> tuple[int, IPv4Address]:
    """Bind `sock` to the interface and its peers; the ifindex and the source address."""
    ifindex = _interface_index(interface)
    with _startup_errors(interface, f"bind the socket to interface {interface}"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    chosen = source or _primary_address(sock, interface)
    with _startup_errors(interface, "set TTL 255 on the socket"):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
    if unicast_peers:
        # Binding sets the source of what we send and makes the kernel deliver only
        # packets addressed to it.
        _bind_source(sock, interface, chosen)
    else:
        if source is not None:
            _require_local(interface, source)
        _join_group(sock, interface, ifindex, chosen)
    return ifindex, chosen


def _interface_index(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except (OSError, ValueError):
        raise StartupError(
            f"VRRP interface {interface!r} does not exist in this network namespace "
            f"(check `interface` in the vrrp instance; `ip link` lists the interfaces)"
        ) from None


def _primary_address(sock: socket.socket, interface: str) -> IPv4Address:
    request = _IFREQ.pack(interface.encode())
    try:
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError(
                f"VRRP on {interface}: the interface has no IPv4 address to send adverts "
                f"from (add one to {interface}, or set unicast_source)"
            ) from None
        raise StartupError(
            f"VRRP on {interface}: cannot read the interface's IPv4 address: "
            f"{exc.strerror or exc} (or set unicast_source)"
        ) from None
    return IPv4Address(reply[_IFREQ_ADDR])


def _bind_source(sock: socket.socket, interface: str, source: IPv4Address) -> None:
    with _startup_errors(interface, f"send from {source}", _not_local_hint(source)):
        sock.bind((str(source), 0))


def _require_local(interface: str, source: IPv4Address) -> None:
    """Refuse a multicast source address that is not ours, which would fail every send."""
    with (
        _startup_errors(interface, f"send from {source}", _not_local_hint(source)),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe,
    ):
        probe.bind((str(source), 0))


def _not_local_hint(source: IPv4Address) -> str:
    return f"{source} is not an address of this host; fix unicast_source or add the address"


def _join_group(sock: socket.socket, interface: str, ifindex: int, source: IPv4Address) -> None:
    group = VRRP_MULTICAST_V4.packed
    with _startup_errors(interface, f"join the VRRP multicast group {VRRP_MULTICAST_V4}"):
        sock.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            _IP_MREQN.pack(group, bytes(4), ifindex),
        )
        # ip_mreqn with an address: send out of this interface with this source address.
        sock.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_MULTICAST_IF,
            _IP_MREQN.pack(bytes(4), source.packed, ifindex),
        )
        # Our own adverts coming back would look like another router's.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)


@contextmanager
def _startup_errors(interface: str, action: str, hint: str = "") -> Iterator[None]:
    """Turn an OSError from `action` into a StartupError naming the interface and the fix."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise StartupError(_describe(interface, action, exc, hint)) from None
        # EPERM is the missing capability; EACCES (a security module's veto) is not.
        raise StartupError(
            f"VRRP on {interface}: cannot {action}: needs CAP_NET_RAW "
            f"(run as root or grant it with setcap/AmbientCapabilities)"
        ) from None


def _describe(interface: str, action: str, exc: OSError, hint: str) -> str:
    reason = exc.strerror or str(exc)
    suffix = f" ({hint})" if hint else ""
    return f"VRRP on {interface}: cannot {action}: {reason}{suffix}"
