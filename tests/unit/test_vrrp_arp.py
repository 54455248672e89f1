"""Gratuitous ARP and unsolicited NA frames, byte for byte (no root needed)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.vrrp.arp import (
    announcement_frame,
    format_mac,
    gratuitous_arp_frame,
    parse_mac,
    unsolicited_na_frame,
)

MAC = bytes.fromhex("02005e00010a")

# Built by hand from RFC 826 and keepalived's vrrp_arp.c, not from our code.
GARP_198_18_0_10 = bytes.fromhex(
    "ffffffffffff"  # Ethernet destination: broadcast
    "02005e00010a"  # Ethernet source: our MAC
    "0806"  # ethertype ARP
    "0001"  # hardware type Ethernet
    "0800"  # protocol type IPv4
    "06"
    "04"  # address lengths
    "0001"  # opcode: request
    "02005e00010a"  # sender hardware address
    "c612000a"  # sender IP 198.18.0.10
    "ffffffffffff"  # target hardware address, as keepalived sends it
    "c612000a"  # target IP = sender IP: gratuitous
)

# RFC 4861 §4.4 and §7.2.6; checksum summed by hand over the RFC 8200 pseudo-header.
NA_2001_2__10 = bytes.fromhex(
    "333300000001"  # Ethernet destination: all-nodes multicast (RFC 2464 §7)
    "02005e00010a"  # Ethernet source
    "86dd"  # ethertype IPv6
    "60000000"  # version 6, traffic class 0, flow label 0
    "0020"  # payload length 32
    "3a"  # next header ICMPv6
    "ff"  # hop limit 255
    "20010002000000000000000000000010"  # source: the VIP 2001:2::10
    "ff020000000000000000000000000001"  # destination ff02::1
    "88"  # type 136: Neighbor Advertisement
    "00"  # code
    "b56f"  # checksum
    "20000000"  # flags: Override only (not Router, not Solicited)
    "20010002000000000000000000000010"  # target address: the VIP
    "02"  # option: Target Link-Layer Address
    "01"  # length 1 (x 8 octets)
    "02005e00010a"  # our MAC
)

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6s = st.integers(0, 2**128 - 1).map(IPv6Address)


def ones_complement_sum(data: bytes) -> int:
    """Independent of bascule: the RFC 1071 sum, which is 0xffff over a valid packet."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_gratuitous_arp_is_a_broadcast_request_for_the_vip_itself() -> None:
    assert gratuitous_arp_frame(IPv4Address("198.18.0.10"), MAC) == GARP_198_18_0_10


def test_unsolicited_na_matches_the_hand_built_frame() -> None:
    assert unsolicited_na_frame(IPv6Address("2001:2::10"), MAC) == NA_2001_2__10


def test_na_from_a_router_sets_the_router_flag_and_keeps_a_valid_checksum() -> None:
    frame = unsolicited_na_frame(IPv6Address("2001:2::10"), MAC, router=True)
    flags = struct.unpack_from("!I", frame, 14 + 40 + 4)[0]
    assert flags == 0xA0000000  # Router | Override
    assert ones_complement_sum(_icmp_with_pseudo_header(frame)) == 0xFFFF


@given(ipv6s, macs, st.booleans())
def test_na_checksum_verifies_for_any_address(ip: IPv6Address, mac: bytes, router: bool) -> None:
    frame = unsolicited_na_frame(ip, mac, router=router)
    assert ones_complement_sum(_icmp_with_pseudo_header(frame)) == 0xFFFF
    assert frame[6:12] == mac and frame[-6:] == mac
    assert frame[22:38] == ip.packed and frame[62:78] == ip.packed


@given(ipv4s, macs)
def test_garp_names_the_address_as_sender_and_target(ip: IPv4Address, mac: bytes) -> None:
    frame = gratuitous_arp_frame(ip, mac)
    assert len(frame) == 42
    assert frame[6:12] == frame[22:28] == mac
    assert frame[28:32] == frame[38:42] == ip.packed


def test_announcement_frame_picks_arp_or_na_by_family() -> None:
    assert announcement_frame(IPv4Address("198.18.0.10"), MAC) == GARP_198_18_0_10
    assert announcement_frame(IPv6Address("2001:2::10"), MAC) == NA_2001_2__10


def test_a_mac_that_is_not_six_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        gratuitous_arp_frame(IPv4Address("198.18.0.10"), MAC[:5])


@given(macs)
def test_mac_text_round_trips(mac: bytes) -> None:
    assert parse_mac(format_mac(mac)) == mac


@pytest.mark.parametrize(
    "text", ["02:00:5e:00:01", "02:00:5e:00:01:0a:ff", "02-00-5e-00-01-0a", "02:00:5e:00:01:zz", ""]
)
def test_malformed_mac_text_is_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        parse_mac(text)


def _icmp_with_pseudo_header(frame: bytes) -> bytes:
    ipv6 = frame[14:54]
    icmp = frame[54:]
    src, dst = ipv6[8:24], ipv6[24:40]
    return src + dst + struct.pack("!I3xB", len(icmp), 58) + icmp
