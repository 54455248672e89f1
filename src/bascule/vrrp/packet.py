"""VRRP advertisement codec: `Advert` <-> bytes on the wire, and receive-side validation.

This module owns the VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) advertisement layouts,
their checksums, the receive checks of RFC 5798 §7.1 / RFC 3768 §7.1 (each failure is
a `Drop` whose reason comes from the fixed `DropReason` set, so the daemon can count
drops by reason), and parsing the IPv4 header a raw socket hands us. It is pure: no
sockets, no clock. What an advert means for the election belongs to `machine.py`.

Wire layout (the VRRP message is the IP payload, protocol 112; the IP header is the
kernel's, sent with TTL 255 to 224.0.0.18 or ff02::12, RFC 5798 §5.1.1 / §5.1.2)::

    VRRPv3, RFC 5798 §5.1 and §5.2 (IPv4 or IPv6)
        byte 0        byte 1        byte 2        byte 3
    +------+------+-------------+-------------+-------------+
    | ver 3|type 1|    VRID     |  priority   |  count n    |  §5.2.1 .. §5.2.5
    +------+------+-------------+-------------+-------------+
    | rsvd |  max adver int, cs |         checksum          |  §5.2.6 .. §5.2.8
    +------+--------------------+---------------------------+
    | n addresses: 4 octets each (IPv4), 16 octets (IPv6)   |  §5.2.9
    +-------------------------------------------------------+

    VRRPv2, RFC 3768 §5.1 and §5.3 (IPv4 only; keepalived's v2-over-IPv6 is not standard)
    +------+------+-------------+-------------+-------------+
    | ver 2|type 1|    VRID     |  priority   |  count n    |  §5.3.1 .. §5.3.5
    +------+------+-------------+-------------+-------------+
    |  auth type  | adver int, s|         checksum          |  §5.3.6 .. §5.3.8
    +-------------+-------------+---------------------------+
    | n IPv4 addresses, 4 octets each                       |  §5.3.9
    +-------------------------------------------------------+
    | authentication data, 8 octets, zero (auth type 0)     |  §5.3.10
    +-------------------------------------------------------+

Checksum (RFC 1071 internet checksum, computed with the checksum field zero):

* v2 (RFC 3768 §5.3.8): over the VRRP message, authentication data included.
* v3 (RFC 5798 §5.2.8): over the message prefixed by a pseudo-header. For IPv6 that is
  the RFC 2460 §8.1 one (src, dst, 32-bit length, next header 112). For IPv4, vendors
  read §5.2.8 differently, so `V3Checksum` names the three variants met in the wild:
  keepalived's default (IPv4 pseudo-header of src, dst, 0, 112, length), older keepalived
  in unicast mode (224.0.0.18 as destination whatever the real one, keepalived issue #642,
  kept as its `old_unicast_checksum` option) and Cisco's reading (no pseudo-header:
  keepalived's `v3_checksum_as_v2`, FRR without `checksum-with-ipv4-pseudoheader`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Final, NamedTuple

IPAddress = IPv4Address | IPv6Address

VRRP_PROTOCOL: Final = 112
VRRP_TTL: Final = 255
VRRP_MULTICAST_V4: Final = IPv4Address("224.0.0.18")
VRRP_MULTICAST_V6: Final = IPv6Address("ff02::12")
ADVERTISEMENT: Final = 1

V2_INTERVAL_S: Final = range(1, 256)  # Adver Int is one octet of whole seconds
V3_INTERVAL_CS: Final = range(1, 4096)  # Max Adver Int is 12 bits of centiseconds
V2_AUTH_DATA_LEN: Final = 8

# ver/type, VRID, priority, count, (v2: auth type | adver int; v3: rsvd | max adver int),
# checksum. The fourth field is one 16-bit word so both versions share one layout.
_HEADER: Final = struct.Struct("!BBBBHH")
_HEADER_LEN: Final = _HEADER.size
_CHECKSUM_OFFSET: Final = 6
_V3_INTERVAL_MASK: Final = 0x0FFF  # the top 4 bits are rsvd: zero on send, ignored on receive

# RFC 3768 §5.3.6: types 1 and 2 were RFC 2338's password and IPsec AH, which keepalived
# still offers as `auth_type PASS` / `auth_type AH`.
_AUTH_TYPE_NAMES: Final = {1: "simple password (keepalived auth_type PASS)", 2: "IPsec AH"}


class V3Checksum(StrEnum):
    """How a VRRPv3-over-IPv4 checksum covers the IP addresses (see the module docstring)."""

    PSEUDO_HEADER = "pseudo-header"
    MULTICAST_PSEUDO_HEADER = "multicast-pseudo-header"
    NO_PSEUDO_HEADER = "no-pseudo-header"


class DropReason(StrEnum):
    """Why a received advert was dropped; the value is the metric label."""

    TTL = "ttl"
    VERSION = "version"
    TYPE = "type"
    CHECKSUM = "checksum"
    VRID = "vrid"
    LENGTH = "length"
    ADDRESSES = "addresses"
    INTERVAL = "interval"
    SOURCE = "source"
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class Drop:
    """A received packet we refuse, with a sentence an operator can act on."""

    reason: DropReason
    detail: str

    def __str__(self) -> str:
        return f"dropped VRRP advert ({self.reason}): {self.detail}"


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRP ADVERTISEMENT.

    `interval` is in the version's wire unit: whole seconds for v2 (Adver Int), centiseconds
    for v3 (Max Adver Int); `interval_seconds` converts. `checksum` is what a decoded advert
    carried; `encode` ignores it and computes its own, and it takes no part in equality.
    """

    version: int
    vrid: int
    priority: int
    interval: int
    addresses: tuple[IPAddress, ...]
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_version(self.version, "Advert")
        _check_vrid(self.vrid, "Advert")
        if self.priority not in range(256):
            raise ValueError(
                f"Advert priority must be 0..255 (0 = master stepping down), got {self.priority}"
            )
        _check_interval(self.version, self.interval, "Advert")
        _check_addresses(self.version, self.addresses, "Advert")

    @classmethod
    def v2(
        cls, *, vrid: int, priority: int, advert_int_s: int, addresses: tuple[IPAddress, ...]
    ) -> Advert:
        """A VRRPv2 advert; the interval is whole seconds (RFC 3768 §5.3.7)."""
        return cls(2, vrid, priority, advert_int_s, addresses)

    @classmethod
    def v3(
        cls, *, vrid: int, priority: int, max_advert_int_cs: int, addresses: tuple[IPAddress, ...]
    ) -> Advert:
        """A VRRPv3 advert; the interval is centiseconds (RFC 5798 §5.2.7)."""
        return cls(3, vrid, priority, max_advert_int_cs, addresses)

    @property
    def interval_seconds(self) -> float:
        """The advertisement interval in seconds, whatever the version."""
        return float(self.interval) if self.version == 2 else self.interval / 100

    @property
    def family(self) -> int:
        """IP version of the addresses (4 or 6)."""
        return self.addresses[0].version


@dataclass(frozen=True, slots=True)
class ReceiveRules:
    """What one VRRP instance accepts (RFC 5798 §7.1, RFC 3768 §7.1).

    * `addresses`: the configured virtual addresses; an advert listing others is dropped
      unless it comes from the address owner (priority 255, as RFC 5798 §7.1 says) or
      `accept_address_mismatch` is set.
    * `advert_interval`: the configured interval in the version's wire unit. v2 drops
      adverts whose interval differs (RFC 3768 §7.1); v3 accepts any and the state
      machine learns the master's (RFC 5798 §6.4.2).
    * `allowed_sources`: when set (unicast peers, or an allow-list), adverts from any other
      source are dropped.
    * `check_ttl`: RFC says TTL must be 255; turn off only for unicast peers reached
      through routers (keepalived skips the TTL check whenever unicast peers are set).
    * `v3_checksum`: how the peers compute VRRPv3-over-IPv4 checksums.
    """

    version: int
    vrid: int
    addresses: tuple[IPAddress, ...]
    advert_interval: int
    allowed_sources: frozenset[IPAddress] | None = None
    accept_address_mismatch: bool = False
    check_ttl: bool = True
    v3_checksum: V3Checksum = V3Checksum.PSEUDO_HEADER

    def __post_init__(self) -> None:
        _check_version(self.version, "ReceiveRules")
        _check_vrid(self.vrid, "ReceiveRules")
        _check_interval(self.version, self.advert_interval, "ReceiveRules")
        _check_addresses(self.version, self.addresses, "ReceiveRules")
        _check_checksum_mode(self.v3_checksum, self.family, "ReceiveRules")
        if self.allowed_sources is not None:
            strangers = sorted(str(a) for a in self.allowed_sources if a.version != self.family)
            if strangers:
                raise ValueError(
                    f"ReceiveRules allowed_sources {', '.join(strangers)} are not IPv{self.family}"
                    f" like the virtual addresses; adverts from them could never arrive"
                )

    @property
    def family(self) -> int:
        """IP version of the configured addresses (4 or 6)."""
        return self.addresses[0].version


class IPv4Packet(NamedTuple):
    """The fields of an IPv4 packet a VRRP receiver needs."""

    src: IPv4Address
    dst: IPv4Address
    ttl: int
    protocol: int
    payload: bytes


# --- checksums -------------------------------------------------------------------------


def internet_checksum(data: bytes) -> int:
    """RFC 1071: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    """The pseudo-header for protocol 112: IPv4 (12 octets) or RFC 2460 §8.1 IPv6 (40)."""
    _require_one_family(src.version, src, dst)
    if isinstance(src, IPv4Address):
        return src.packed + dst.packed + struct.pack("!BBH", 0, VRRP_PROTOCOL, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, VRRP_PROTOCOL)


def vrrp_checksum(
    message: bytes,
    version: int,
    src: IPAddress,
    dst: IPAddress,
    v3_checksum: V3Checksum = V3Checksum.PSEUDO_HEADER,
) -> int:
    """The value the checksum field of `message` must hold (its current content is ignored)."""
    zeroed = message[:_CHECKSUM_OFFSET] + b"\x00\x00" + message[_CHECKSUM_OFFSET + 2 :]
    return internet_checksum(
        _checksum_prefix(len(message), version, src, dst, v3_checksum) + zeroed
    )


def checksum_is_valid(
    message: bytes,
    version: int,
    src: IPAddress,
    dst: IPAddress,
    v3_checksum: V3Checksum = V3Checksum.PSEUDO_HEADER,
) -> bool:
    """Whether `message` (checksum field included) sums to zero, as a receiver checks it.

    Summing everything, rather than comparing with `vrrp_checksum`, also accepts 0xFFFF
    where 0x0000 was computed: both are zero in one's complement, and keepalived's
    receiver accepts both too.
    """
    prefix = _checksum_prefix(len(message), version, src, dst, v3_checksum)
    return internet_checksum(prefix + message) == 0


def _checksum_prefix(
    length: int, version: int, src: IPAddress, dst: IPAddress, v3_checksum: V3Checksum
) -> bytes:
    if version == 2 or (src.version == 4 and v3_checksum is V3Checksum.NO_PSEUDO_HEADER):
        return b""
    if src.version == 4 and v3_checksum is V3Checksum.MULTICAST_PSEUDO_HEADER:
        return pseudo_header(src, VRRP_MULTICAST_V4, length)
    return pseudo_header(src, dst, length)


# --- encode ----------------------------------------------------------------------------


def encode(
    advert: Advert,
    src: IPAddress,
    dst: IPAddress,
    *,
    v3_checksum: V3Checksum = V3Checksum.PSEUDO_HEADER,
) -> bytes:
    """The VRRP message for `advert` sent from `src` to `dst`, checksum filled in.

    `src` and `dst` are those the IP header will carry: v3 checksums cover them (send one
    encoding per unicast peer). The IP header itself is left to the kernel.
    """
    _require_one_family(advert.family, src, dst)
    _check_checksum_mode(v3_checksum, advert.family, "encode")
    message = _pack(advert)
    checksum = vrrp_checksum(message, advert.version, src, dst, v3_checksum)
    return (
        message[:_CHECKSUM_OFFSET] + checksum.to_bytes(2, "big") + message[_CHECKSUM_OFFSET + 2 :]
    )


def _pack(advert: Advert) -> bytes:
    """The message with a zero checksum."""
    header = _HEADER.pack(
        advert.version << 4 | ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        len(advert.addresses),
        # v2: auth type 0 in the high octet; v3: the 4 rsvd bits zero (RFC 5798 §5.2.6).
        advert.interval,
        0,
    )
    addresses = b"".join(a.packed for a in advert.addresses)
    auth_data = bytes(V2_AUTH_DATA_LEN) if advert.version == 2 else b""
    return header + addresses + auth_data


# --- decode ----------------------------------------------------------------------------


class _Header(NamedTuple):
    version: int
    type: int
    vrid: int
    priority: int
    address_count: int
    word: int  # v2: auth type << 8 | adver int; v3: rsvd << 12 | max adver int
    checksum: int

    @classmethod
    def unpack(cls, payload: bytes) -> _Header:
        version_type, vrid, priority, count, word, checksum = _HEADER.unpack_from(payload)
        return cls(version_type >> 4, version_type & 0x0F, vrid, priority, count, word, checksum)

    @property
    def auth_type(self) -> int:
        return self.word >> 8

    @property
    def interval(self) -> int:
        return self.word & 0xFF if self.version == 2 else self.word & _V3_INTERVAL_MASK


def peek_vrid(payload: bytes) -> int | None:
    """The VRID of a received message, to pick the instance whose rules apply."""
    return payload[1] if len(payload) >= _HEADER_LEN else None


def decode(
    payload: bytes, src: IPAddress, dst: IPAddress, ttl: int, rules: ReceiveRules
) -> Advert | Drop:
    """Validate a received VRRP message against `rules`; the advert, or why it is dropped.

    `src`, `dst` and `ttl` come from the IP header (see `parse_ipv4`; for IPv6, from the
    socket's ancillary data). Checks run in RFC 5798 §7.1 order after the IP-level ones,
    so the reason names the first thing wrong.
    """
    _require_one_family(rules.family, src, dst)
    drop = _check_ip_fields(src, ttl, rules) or _check_fixed_header(payload, src, rules)
    if drop is not None:
        return drop
    header = _Header.unpack(payload)
    drop = (
        _check_length(payload, header, rules)
        or _check_checksum(payload, header, src, dst, rules)
        or _check_vrid_and_auth(header, src, rules)
        or _check_interval_field(header, src, rules)
    )
    if drop is not None:
        return drop
    addresses = _unpack_addresses(payload, header.address_count, rules.family)
    drop = _check_address_list(addresses, header, src, rules)
    if drop is not None:
        return drop
    return Advert(
        header.version,
        header.vrid,
        header.priority,
        header.interval,
        addresses,
        checksum=header.checksum,
    )


def _check_ip_fields(src: IPAddress, ttl: int, rules: ReceiveRules) -> Drop | None:
    if rules.check_ttl and ttl != VRRP_TTL:
        return Drop(
            DropReason.TTL,
            f"TTL {ttl} from {src}, expected {VRRP_TTL}: the advert crossed a router or was "
            f"forged (for unicast peers behind routers, turn the TTL check off)",
        )
    if rules.allowed_sources is not None and src not in rules.allowed_sources:
        return Drop(
            DropReason.SOURCE,
            f"source {src} is not an allowed peer of VRID {rules.vrid} "
            f"(add it to unicast_peers or the allow-list if it is one of ours)",
        )
    return None


def _check_fixed_header(payload: bytes, src: IPAddress, rules: ReceiveRules) -> Drop | None:
    if len(payload) < _HEADER_LEN:
        return Drop(
            DropReason.LENGTH,
            f"{len(payload)}-byte message from {src} is shorter than the "
            f"{_HEADER_LEN}-byte VRRP header",
        )
    version, packet_type = payload[0] >> 4, payload[0] & 0x0F
    if version != rules.version:
        return Drop(
            DropReason.VERSION,
            f"VRRPv{version} advert from {src}, this instance speaks VRRPv{rules.version} "
            f"(set the same version on every router of VRID {rules.vrid})",
        )
    if packet_type != ADVERTISEMENT:
        return Drop(
            DropReason.TYPE,
            f"packet type {packet_type} from {src}; VRRP defines only type 1 (ADVERTISEMENT)",
        )
    return None


def _expected_length(version: int, count: int, family: int) -> int:
    address_len = 4 if family == 4 else 16
    auth_len = V2_AUTH_DATA_LEN if version == 2 else 0
    return _HEADER_LEN + count * address_len + auth_len


def _check_length(payload: bytes, header: _Header, rules: ReceiveRules) -> Drop | None:
    expected = _expected_length(header.version, header.address_count, rules.family)
    if len(payload) == expected:
        return None
    return Drop(
        DropReason.LENGTH,
        f"message is {len(payload)} bytes but its address count {header.address_count} means "
        f"{expected} bytes for VRRPv{header.version} over IPv{rules.family}",
    )


def _check_checksum(
    payload: bytes, header: _Header, src: IPAddress, dst: IPAddress, rules: ReceiveRules
) -> Drop | None:
    if checksum_is_valid(payload, header.version, src, dst, rules.v3_checksum):
        return None
    expected = vrrp_checksum(payload, header.version, src, dst, rules.v3_checksum)
    detail = (
        f"checksum 0x{header.checksum:04x} from {src} does not match the content, "
        f"expected 0x{expected:04x}"
    )
    if header.version == 3 and rules.family == 4:
        detail += (
            f" with the {rules.v3_checksum} VRRPv3 checksum; if every advert from this peer "
            f"fails, the peer computes it another way (set v3_checksum to match)"
        )
    return Drop(DropReason.CHECKSUM, detail)


def _check_vrid_and_auth(header: _Header, src: IPAddress, rules: ReceiveRules) -> Drop | None:
    if header.vrid != rules.vrid:
        return Drop(
            DropReason.VRID,
            f"VRID {header.vrid} from {src}, this instance is VRID {rules.vrid}",
        )
    if header.version == 2 and header.auth_type != 0:
        kind = _AUTH_TYPE_NAMES.get(header.auth_type, "a reserved value")
        return Drop(
            DropReason.AUTH,
            f"auth type {header.auth_type} ({kind}) from {src}: only type 0 is supported "
            f"(RFC 3768 removed authentication); remove the authentication block from the "
            f"peer's keepalived configuration",
        )
    return None


def _check_interval_field(header: _Header, src: IPAddress, rules: ReceiveRules) -> Drop | None:
    received = header.interval
    if header.version == 2 and received != rules.advert_interval:
        return Drop(
            DropReason.INTERVAL,
            f"advert interval {received} s from {src}, configured {rules.advert_interval} s: "
            f"VRRPv2 routers must agree on advert_interval",
        )
    if header.version == 3 and received == 0:
        # A zero interval would make the master-down timer bare skew time: refuse it.
        return Drop(
            DropReason.INTERVAL,
            f"max advert interval 0 cs from {src}; VRRPv3 needs 1..4095 centiseconds",
        )
    return None


def _unpack_addresses(payload: bytes, count: int, family: int) -> tuple[IPAddress, ...]:
    size, kind = (4, IPv4Address) if family == 4 else (16, IPv6Address)
    start = _HEADER_LEN
    return tuple(kind(payload[start + i * size : start + (i + 1) * size]) for i in range(count))


def _check_address_list(
    addresses: tuple[IPAddress, ...], header: _Header, src: IPAddress, rules: ReceiveRules
) -> Drop | None:
    if not addresses:
        return Drop(
            DropReason.ADDRESSES,
            f"advert from {src} lists no address; at least one is required (RFC 5798 §5.2.5)",
        )
    matches = len(addresses) == len(rules.addresses) and set(addresses) == set(rules.addresses)
    owner = header.priority == 255
    if matches or owner or rules.accept_address_mismatch:
        return None
    return Drop(
        DropReason.ADDRESSES,
        f"advert from {src} for VRID {rules.vrid} lists {_address_list(addresses)}, "
        f"configured {_address_list(rules.addresses)}: make virtual_ipaddresses identical "
        f"on every router",
    )


def _address_list(addresses: tuple[IPAddress, ...]) -> str:
    return "[" + ", ".join(str(a) for a in addresses) + "]"


# --- the IPv4 header a raw socket delivers ---------------------------------------------


def parse_ipv4(packet: bytes) -> IPv4Packet | Drop:
    """Split what a raw IPv4 socket returned into the fields VRRP needs and the payload.

    The kernel has already checked the header checksum and reassembled fragments before a
    raw socket sees a packet, so only the lengths are checked here, which a hostile
    sender controls.
    """
    if len(packet) < 20:
        return Drop(DropReason.LENGTH, f"{len(packet)}-byte packet is shorter than an IPv4 header")
    if packet[0] >> 4 != 4:
        return Drop(DropReason.VERSION, f"IP version {packet[0] >> 4} where IPv4 was expected")
    header_len = (packet[0] & 0x0F) * 4
    total_len = int.from_bytes(packet[2:4], "big")
    if not 20 <= header_len <= len(packet):
        return Drop(
            DropReason.LENGTH,
            f"IPv4 header length {header_len} is outside 20..{len(packet)} (the packet size)",
        )
    if not header_len <= total_len <= len(packet):
        return Drop(
            DropReason.LENGTH,
            f"IPv4 total length {total_len} is outside {header_len}..{len(packet)} "
            f"(header length..bytes received)",
        )
    return IPv4Packet(
        src=IPv4Address(packet[12:16]),
        dst=IPv4Address(packet[16:20]),
        ttl=packet[8],
        protocol=packet[9],
        payload=packet[header_len:total_len],
    )


# --- argument checks (programming errors, not network input) ----------------------------


def _check_version(version: int, where: str) -> None:
    if version not in (2, 3):
        raise ValueError(f"{where} version must be 2 (RFC 3768) or 3 (RFC 5798), got {version}")


def _check_vrid(vrid: int, where: str) -> None:
    if vrid not in range(1, 256):
        raise ValueError(f"{where} VRID must be 1..255, got {vrid}")


def _check_interval(version: int, interval: int, where: str) -> None:
    if version == 2 and interval not in V2_INTERVAL_S:
        raise ValueError(f"{where} VRRPv2 advert interval must be 1..255 seconds, got {interval}")
    if version == 3 and interval not in V3_INTERVAL_CS:
        raise ValueError(
            f"{where} VRRPv3 max advert interval must be 1..4095 centiseconds "
            f"(0.01..40.95 s), got {interval}"
        )


def _check_addresses(version: int, addresses: tuple[IPAddress, ...], where: str) -> None:
    if not 1 <= len(addresses) <= 255:
        raise ValueError(f"{where} needs 1..255 virtual addresses, got {len(addresses)}")
    families = {a.version for a in addresses}
    if len(families) > 1:
        raise ValueError(
            f"{where} mixes IPv4 and IPv6 addresses {_address_list(addresses)}; "
            f"use one VRRP instance per address family"
        )
    if version == 2 and families == {6}:
        raise ValueError(f"{where}: VRRPv2 is IPv4-only (RFC 3768); use version 3 for IPv6")


def _check_checksum_mode(mode: V3Checksum, family: int, where: str) -> None:
    if family == 6 and mode is not V3Checksum.PSEUDO_HEADER:
        raise ValueError(
            f"{where}: v3_checksum {mode} exists only for IPv4; IPv6 always uses the "
            f"RFC 2460 pseudo-header"
        )


def _require_one_family(family: int, src: IPAddress, dst: IPAddress) -> None:
    if src.version != family or dst.version != family:
        raise ValueError(
            f"source {src} and destination {dst} must both be IPv{family}, "
            f"the family of the virtual addresses"
        )
