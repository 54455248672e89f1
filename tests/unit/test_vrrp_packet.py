"""VRRP advert codec: byte-exact encodings, round trips, and every receive-side drop."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    Advert,
    Drop,
    DropReason,
    IPAddress,
    IPv4Packet,
    ReceiveRules,
    V3Checksum,
    checksum_is_valid,
    decode,
    encode,
    internet_checksum,
    parse_ipv4,
    peek_vrid,
    pseudo_header,
    vrrp_checksum,
)

ME = IPv4Address("198.18.0.11")
PEER = IPv4Address("198.18.0.12")
STRANGER = IPv4Address("198.18.0.66")
VIPS = (IPv4Address("198.19.0.1"), IPv4Address("198.19.0.2"), IPv4Address("198.19.0.3"))
ME6 = IPv6Address("fe80::11")


def reference_checksum(data: bytes) -> int:
    """RFC 1071 written independently of the module, so the two cannot share a bug."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class Crafted:
    """Raw advert fields, for packets `encode` refuses to build (hostile or foreign ones)."""

    version: int = 3
    type: int = 1
    vrid: int = 51
    priority: int = 150
    count: int | None = None
    word: int = 100  # v2: auth type << 8 | adver int; v3: rsvd << 12 | max adver int
    addresses: tuple[IPAddress, ...] = VIPS

    def payload(self, src: IPAddress = PEER, dst: IPAddress = VRRP_MULTICAST_V4) -> bytes:
        """The message with a correct checksum (v3: IPv4/IPv6 pseudo-header of src, dst)."""
        count = len(self.addresses) if self.count is None else self.count
        body = bytes([self.version << 4 | self.type, self.vrid, self.priority, count])
        body += struct.pack("!HH", self.word, 0)
        body += b"".join(a.packed for a in self.addresses)
        if self.version == 2:
            body += bytes(8)
        prefix = b""
        if self.version == 3 and src.version == 4:
            prefix = src.packed + dst.packed + struct.pack("!BBH", 0, 112, len(body))
        elif self.version == 3:
            prefix = src.packed + dst.packed + struct.pack("!IxxxB", len(body), 112)
        checksum = reference_checksum(prefix + body)
        return body[:6] + checksum.to_bytes(2, "big") + body[8:]


V3_RULES = ReceiveRules(version=3, vrid=51, addresses=VIPS, advert_interval=100)
V2_RULES = ReceiveRules(version=2, vrid=51, addresses=VIPS, advert_interval=1)


def receive(
    payload: bytes,
    rules: ReceiveRules = V3_RULES,
    *,
    src: IPAddress = PEER,
    dst: IPAddress = VRRP_MULTICAST_V4,
    ttl: int = 255,
) -> Advert | Drop:
    """Decode as the daemon would for a packet from `src` to `dst` (PEER to the group)."""
    return decode(payload, src, dst, ttl, rules)


def with_bad_checksum(payload: bytes) -> bytes:
    return payload[:6] + bytes([payload[6] ^ 0x01]) + payload[7:]


def dropped(result: object) -> Drop:
    assert isinstance(result, Drop), f"expected a drop, got {result}"
    return result


# --- byte-exact encodings -------------------------------------------------------------

# Captured VRRPv2 advert, IP header onwards (the Ethernet header removed), from gopacket's
# layers/vrrp_test.go (google/gopacket): "IP 192.168.0.30 > 224.0.0.18: VRRPv2,
# Advertisement, vrid 1, prio 100, authtype none, intvl 1s, length 20".
CAPTURED_V2 = bytes.fromhex(
    "45c0 0028 0000 0000 ff70 19cd c0a8001e e000001221016401 0001ba52 c0a80001 0000000000000000"
)

# keepalived v2.0.12 VRRPv3 unicast advert logged with its packet bytes in keepalived
# issue #1175 (acassen/keepalived): 10.1.0.3 -> unicast peer 10.1.0.1, VRID 88, priority
# 198, interval 100 cs, VIP 10.195.76.227, checksum over the real unicast pseudo-header.
CAPTURED_KEEPALIVED_V3 = bytes.fromhex(
    "45c0 0020 0001 0000 ff70 0000 0a010003 0a0100013158c601 00649c19 0ac34ce3"
)
KEEPALIVED_ADVERT = Advert.v3(
    vrid=88, priority=198, max_advert_int_cs=100, addresses=(IPv4Address("10.195.76.227"),)
)


def test_v2_single_address_matches_a_captured_packet() -> None:
    advert = Advert.v2(vrid=1, priority=100, advert_int_s=1, addresses=(ip_address("192.168.0.1"),))

    wire = encode(advert, IPv4Address("192.168.0.30"), VRRP_MULTICAST_V4)

    assert wire == CAPTURED_V2[20:]
    assert wire[6:8] == b"\xba\x52"


def test_v2_three_addresses_match_the_rfc_3768_layout_built_by_hand() -> None:
    expected = bytes.fromhex(
        "21 33 96 03"  # version 2 | type 1, VRID 51, priority 150, 3 addresses
        "00 01 f686"  # auth type 0, adver int 1 s, checksum over the message
        "c6130001 c6130002 c6130003"  # 198.19.0.1 .. .3
        "0000000000000000"  # authentication data, zero for auth type 0
    )
    advert = Advert.v2(vrid=51, priority=150, advert_int_s=1, addresses=VIPS)

    assert encode(advert, ME, VRRP_MULTICAST_V4) == expected


def test_v3_three_addresses_match_the_rfc_5798_layout_built_by_hand() -> None:
    expected = bytes.fromhex(
        "31 33 96 03"  # version 3 | type 1, VRID 51, priority 150, 3 addresses
        "000a 3fc9"  # rsvd 0 | max adver int 10 cs, checksum with the IPv4 pseudo-header
        "c6130001 c6130002 c6130003"
    )
    advert = Advert.v3(vrid=51, priority=150, max_advert_int_cs=10, addresses=VIPS)

    assert encode(advert, ME, VRRP_MULTICAST_V4) == expected


def test_v3_multicast_checksum_matches_scapy_reference() -> None:
    # scapy test/scapy/layers/vrrp.uts "VRRP - chksums": 20.0.0.3 -> 224.0.0.18,
    # VRID 2, priority 254, adv 1, addresses 20.0.1.2 and 20.0.1.3 -> checksum 0xb25e.
    addresses = (IPv4Address("20.0.1.2"), IPv4Address("20.0.1.3"))
    advert = Advert.v3(vrid=2, priority=254, max_advert_int_cs=1, addresses=addresses)

    wire = encode(advert, IPv4Address("20.0.0.3"), VRRP_MULTICAST_V4)

    assert wire[6:8] == b"\xb2\x5e"


def test_v3_unicast_matches_keepalived_capture_with_real_destination_in_pseudo_header() -> None:
    wire = encode(KEEPALIVED_ADVERT, IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1"))

    assert wire == CAPTURED_KEEPALIVED_V3[20:]


@pytest.mark.parametrize(
    ("mode", "checksum"),
    [
        (V3Checksum.PSEUDO_HEADER, 0x9C19),  # keepalived default, as captured
        (V3Checksum.MULTICAST_PSEUDO_HEADER, 0xC608),  # keepalived old_unicast_checksum
        (V3Checksum.NO_PSEUDO_HEADER, 0xB09B),  # Cisco, keepalived v3_checksum_as_v2
    ],
)
def test_v3_ipv4_checksum_variants_for_unicast(mode: V3Checksum, checksum: int) -> None:
    src, dst = IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1")
    rules = ReceiveRules(3, 88, KEEPALIVED_ADVERT.addresses, 100, v3_checksum=mode)

    wire = encode(KEEPALIVED_ADVERT, src, dst, v3_checksum=mode)

    assert int.from_bytes(wire[6:8], "big") == checksum
    assert receive(wire, rules, src=src, dst=dst) == KEEPALIVED_ADVERT


def test_v3_peers_must_agree_on_the_checksum_variant() -> None:
    src, dst = IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1")
    cisco_style = encode(KEEPALIVED_ADVERT, src, dst, v3_checksum=V3Checksum.NO_PSEUDO_HEADER)
    rules = ReceiveRules(3, 88, KEEPALIVED_ADVERT.addresses, 100)

    drop = dropped(receive(cisco_style, rules, src=src, dst=dst))

    assert drop.reason is DropReason.CHECKSUM
    assert "v3_checksum" in drop.detail


def test_multicast_pseudo_header_variant_equals_the_standard_one_for_multicast() -> None:
    advert = Advert.v3(vrid=51, priority=150, max_advert_int_cs=100, addresses=VIPS)
    standard = encode(advert, ME, VRRP_MULTICAST_V4)
    legacy = encode(advert, ME, VRRP_MULTICAST_V4, v3_checksum=V3Checksum.MULTICAST_PSEUDO_HEADER)

    assert standard == legacy


def test_v3_ipv6_checksum_matches_scapy_reference() -> None:
    # scapy test/scapy/layers/vrrp.uts "VRRP IPv6 - chksums": 2001:db8::1 -> ff02::12,
    # VRID 2, priority 254, adv 1, addresses 2001:db8::2 and ::3 -> checksum 0x481b.
    addresses = (IPv6Address("2001:db8::2"), IPv6Address("2001:db8::3"))
    advert = Advert.v3(vrid=2, priority=254, max_advert_int_cs=1, addresses=addresses)

    wire = encode(advert, IPv6Address("2001:db8::1"), VRRP_MULTICAST_V6)

    assert wire[:8] == bytes.fromhex("31 02 fe 02 0001 481b")
    assert wire[8:] == addresses[0].packed + addresses[1].packed


# --- receiving captured packets through parse_ipv4 ------------------------------------


def test_captured_v2_packet_parses_and_decodes() -> None:
    packet = parse_ipv4(CAPTURED_V2)
    assert isinstance(packet, IPv4Packet)
    rules = ReceiveRules(2, 1, (IPv4Address("192.168.0.1"),), advert_interval=1)

    advert = decode(packet.payload, packet.src, packet.dst, packet.ttl, rules)

    assert packet.protocol == 112
    assert (packet.src, packet.dst, packet.ttl) == (
        IPv4Address("192.168.0.30"),
        VRRP_MULTICAST_V4,
        255,
    )
    assert advert == Advert.v2(
        vrid=1, priority=100, advert_int_s=1, addresses=(IPv4Address("192.168.0.1"),)
    )
    assert isinstance(advert, Advert) and advert.checksum == 0xBA52


def test_captured_keepalived_v3_packet_parses_and_decodes() -> None:
    packet = parse_ipv4(CAPTURED_KEEPALIVED_V3)
    assert isinstance(packet, IPv4Packet)
    rules = ReceiveRules(3, 88, KEEPALIVED_ADVERT.addresses, advert_interval=100)

    advert = decode(packet.payload, packet.src, packet.dst, packet.ttl, rules)

    assert advert == KEEPALIVED_ADVERT
    assert isinstance(advert, Advert) and advert.interval_seconds == 1.0


# --- round trips ------------------------------------------------------------------------

ipv4s = st.builds(IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(min_value=0, max_value=2**128 - 1))
vrids = st.integers(min_value=1, max_value=255)
priorities = st.integers(min_value=0, max_value=255)


@st.composite
def adverts(draw: st.DrawFn, family: int = 4, versions: tuple[int, ...] = (2, 3)) -> Advert:
    version = 3 if family == 6 else draw(st.sampled_from(versions))
    interval_max = 255 if version == 2 else 4095
    address: st.SearchStrategy[IPAddress] = ipv4s if family == 4 else ipv6s
    addresses = st.lists(address, min_size=1, max_size=20)
    return Advert(
        version=version,
        vrid=draw(vrids),
        priority=draw(priorities),
        interval=draw(st.integers(min_value=1, max_value=interval_max)),
        addresses=tuple(draw(addresses)),
    )


def rules_for(advert: Advert, mode: V3Checksum = V3Checksum.PSEUDO_HEADER) -> ReceiveRules:
    return ReceiveRules(
        advert.version, advert.vrid, advert.addresses, advert.interval, v3_checksum=mode
    )


@given(
    advert=adverts(),
    src=ipv4s,
    dst=st.one_of(st.just(VRRP_MULTICAST_V4), ipv4s),
    mode=st.sampled_from(V3Checksum),
)
def test_ipv4_round_trip(
    advert: Advert, src: IPv4Address, dst: IPv4Address, mode: V3Checksum
) -> None:
    wire = encode(advert, src, dst, v3_checksum=mode)

    decoded = decode(wire, src, dst, 255, rules_for(advert, mode))

    assert decoded == advert
    assert isinstance(decoded, Advert)
    assert decoded.checksum == int.from_bytes(wire[6:8], "big")
    assert len(wire) == 8 + 4 * len(advert.addresses) + (8 if advert.version == 2 else 0)


@given(advert=adverts(family=6), src=ipv6s, dst=st.one_of(st.just(VRRP_MULTICAST_V6), ipv6s))
def test_ipv6_round_trip(advert: Advert, src: IPv6Address, dst: IPv6Address) -> None:
    wire = encode(advert, src, dst)

    assert decode(wire, src, dst, 255, rules_for(advert)) == advert
    assert len(wire) == 8 + 16 * len(advert.addresses)


@given(advert=adverts(), src=ipv4s, dst=ipv4s, mode=st.sampled_from(V3Checksum))
def test_encoded_checksum_matches_an_independent_rfc_1071_sum(
    advert: Advert, src: IPv4Address, dst: IPv4Address, mode: V3Checksum
) -> None:
    wire = encode(advert, src, dst, v3_checksum=mode)
    zeroed = wire[:6] + b"\x00\x00" + wire[8:]
    pseudo_dst = VRRP_MULTICAST_V4 if mode is V3Checksum.MULTICAST_PSEUDO_HEADER else dst
    with_pseudo = advert.version == 3 and mode is not V3Checksum.NO_PSEUDO_HEADER
    prefix = src.packed + pseudo_dst.packed + struct.pack("!BBH", 0, 112, len(wire))

    expected = reference_checksum((prefix if with_pseudo else b"") + zeroed)

    assert int.from_bytes(wire[6:8], "big") == expected


# --- corruption ------------------------------------------------------------------------


@given(advert=adverts(), src=ipv4s, data=st.data())
def test_any_single_bit_flip_in_the_message_is_detected(
    advert: Advert, src: IPv4Address, data: st.DataObject
) -> None:
    wire = encode(advert, src, VRRP_MULTICAST_V4)
    bit = data.draw(st.integers(min_value=0, max_value=len(wire) * 8 - 1))
    flipped = bytearray(wire)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)

    assert not checksum_is_valid(bytes(flipped), advert.version, src, VRRP_MULTICAST_V4)
    assert isinstance(decode(bytes(flipped), src, VRRP_MULTICAST_V4, 255, rules_for(advert)), Drop)


@given(advert=adverts(family=6), src=ipv6s, data=st.data())
def test_any_single_bit_flip_in_an_ipv6_message_is_detected(
    advert: Advert, src: IPv6Address, data: st.DataObject
) -> None:
    wire = encode(advert, src, VRRP_MULTICAST_V6)
    bit = data.draw(st.integers(min_value=0, max_value=len(wire) * 8 - 1))
    flipped = bytearray(wire)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)

    assert not checksum_is_valid(bytes(flipped), 3, src, VRRP_MULTICAST_V6)


@given(
    advert=adverts(versions=(3,)),
    src=ipv4s,
    other=ipv4s,
    mode=st.sampled_from([V3Checksum.PSEUDO_HEADER, V3Checksum.MULTICAST_PSEUDO_HEADER]),
)
def test_v3_checksum_binds_the_source_address(
    advert: Advert, src: IPv4Address, other: IPv4Address, mode: V3Checksum
) -> None:
    wire = encode(advert, src, VRRP_MULTICAST_V4, v3_checksum=mode)

    valid = checksum_is_valid(wire, 3, other, VRRP_MULTICAST_V4, mode)

    # Only a source whose 16-bit words sum to the same one's complement value collides.
    assert valid == (word_sum(src) % 0xFFFF == word_sum(other) % 0xFFFF)


def word_sum(address: IPv4Address) -> int:
    return (int(address) >> 16) + (int(address) & 0xFFFF)


def test_v3_checksum_binds_the_unicast_destination() -> None:
    wire = encode(KEEPALIVED_ADVERT, IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1"))
    rules = rules_for(KEEPALIVED_ADVERT)

    drop = dropped(receive(wire, rules, src=IPv4Address("10.1.0.3"), dst=IPv4Address("10.1.0.2")))

    assert drop.reason is DropReason.CHECKSUM
    assert "0x9c19" in drop.detail and "0x9c18" in drop.detail


def test_v2_checksum_does_not_cover_ip_addresses() -> None:
    advert = Advert.v2(vrid=51, priority=150, advert_int_s=1, addresses=VIPS)

    assert encode(advert, ME, VRRP_MULTICAST_V4) == encode(advert, PEER, PEER)


def test_checksum_written_as_negative_zero_is_accepted_like_keepalived() -> None:
    # Choose the last address so the checksum computes to 0x0000: a word equal to the
    # checksum of the rest brings the sum to 0xFFFF. A sender may write 0xFFFF instead,
    # the same one's complement zero; a receiver summing the whole message (as keepalived
    # does) accepts both.
    base = encode(
        Advert.v2(vrid=51, priority=150, advert_int_s=1, addresses=(*VIPS[:2], IPv4Address(0))),
        ME,
        ME,
    )
    addresses = (*VIPS[:2], IPv4Address(int.from_bytes(base[6:8], "big")))
    advert = Advert.v2(vrid=51, priority=150, advert_int_s=1, addresses=addresses)
    wire = encode(advert, ME, VRRP_MULTICAST_V4)
    assert wire[6:8] == b"\x00\x00"

    negative_zero = wire[:6] + b"\xff\xff" + wire[8:]

    assert receive(negative_zero, replace(V2_RULES, addresses=addresses)) == advert


@given(payload=st.binary(max_size=120), ttl=st.integers(min_value=0, max_value=255))
def test_decode_never_raises_on_arbitrary_bytes(payload: bytes, ttl: int) -> None:
    for rules in (V3_RULES, V2_RULES):
        assert isinstance(decode(payload, PEER, VRRP_MULTICAST_V4, ttl, rules), Advert | Drop)


@given(packet=st.binary(max_size=80))
def test_parse_ipv4_never_raises_on_arbitrary_bytes(packet: bytes) -> None:
    assert isinstance(parse_ipv4(packet), IPv4Packet | Drop)


# --- every drop reason -----------------------------------------------------------------


def v2(**fields: object) -> Crafted:
    return replace(Crafted(version=2, word=1), **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DropCase:
    name: str
    payload: bytes
    reason: str
    words: tuple[str, ...] = ()  # what the detail must mention
    rules: ReceiveRules = V3_RULES
    src: IPv4Address = PEER
    ttl: int = 255


ONLY_PEER = replace(V3_RULES, allowed_sources=frozenset({PEER}))
LENIENT = replace(V3_RULES, accept_address_mismatch=True)
DROP_CASES = [
    DropCase("ttl-not-255", Crafted().payload(), "ttl", ("254", "255"), ttl=254),
    DropCase(
        "source-not-allowed",
        Crafted(priority=255).payload(src=STRANGER),
        "source",
        (str(STRANGER), "allow"),
        rules=ONLY_PEER,
        src=STRANGER,
    ),
    DropCase("shorter-than-header", Crafted().payload()[:7], "length", ("7-byte",)),
    DropCase("v2-to-v3-instance", v2().payload(), "version", ("VRRPv2", "VRRPv3")),
    DropCase("v3-to-v2-instance", Crafted().payload(), "version", ("VRRPv3",), V2_RULES),
    DropCase("type-not-advert", Crafted(type=2).payload(), "type", ("type 2",)),
    DropCase("count-says-more", Crafted(count=4).payload(), "length", ("count 4", "24 bytes")),
    DropCase("trailing-bytes", Crafted().payload() + bytes(4), "length", ("24 bytes",)),
    DropCase("v2-no-auth-data", v2().payload()[:-8], "length", ("20", "28"), V2_RULES),
    DropCase("bad-checksum", with_bad_checksum(Crafted().payload()), "checksum", (str(PEER),)),
    DropCase("other-vrid", Crafted(vrid=52).payload(), "vrid", ("VRID 52", "VRID 51")),
    DropCase("v2-password", v2(word=0x0101).payload(), "auth", ("PASS",), V2_RULES),
    DropCase("v2-ipsec-ah", v2(word=0x0201).payload(), "auth", ("AH",), V2_RULES),
    DropCase("v2-interval", v2(word=3).payload(), "interval", ("3 s", "1 s"), V2_RULES),
    DropCase("v3-zero-interval", Crafted(word=0).payload(), "interval", ("interval 0",)),
    DropCase(
        "other-addresses",
        Crafted(addresses=(*VIPS[:2], STRANGER)).payload(),
        "addresses",
        (str(STRANGER), str(VIPS[2])),
    ),
    DropCase("fewer-addresses", Crafted(addresses=VIPS[:2]).payload(), "addresses"),
    DropCase("no-address", Crafted(addresses=()).payload(), "addresses", ("no address",)),
    DropCase(
        "no-address-even-from-owner",
        Crafted(addresses=(), priority=255).payload(),
        "addresses",
        rules=LENIENT,
    ),
]


@pytest.mark.parametrize("case", DROP_CASES, ids=[case.name for case in DROP_CASES])
def test_invalid_adverts_are_dropped_with_a_named_reason(case: DropCase) -> None:
    drop = dropped(receive(case.payload, case.rules, src=case.src, ttl=case.ttl))

    assert drop.reason == case.reason
    for word in case.words:
        assert word in drop.detail
    assert str(drop).startswith(f"dropped VRRP advert ({case.reason}): ")


def test_every_drop_reason_is_reachable() -> None:
    assert {case.reason for case in DROP_CASES} == {reason.value for reason in DropReason}


def test_drop_reasons_are_the_documented_metric_labels() -> None:
    assert {reason.value for reason in DropReason} == {
        "ttl", "version", "type", "checksum", "vrid", "length",
        "addresses", "interval", "source", "auth",
    }  # fmt: skip


def test_checks_run_ip_level_first_so_a_forged_packet_names_its_ttl() -> None:
    forged = Crafted(vrid=52, type=7).payload()[:-1]

    assert dropped(receive(forged, ttl=1)).reason is DropReason.TTL


# --- what is accepted ------------------------------------------------------------------


def test_valid_v3_advert_is_accepted() -> None:
    advert = receive(Crafted(priority=200).payload())

    assert advert == Advert.v3(vrid=51, priority=200, max_advert_int_cs=100, addresses=VIPS)


def test_v3_accepts_another_interval_so_the_backup_can_learn_it() -> None:
    advert = receive(Crafted(word=37).payload())

    assert isinstance(advert, Advert)
    assert advert.interval == 37 and advert.interval_seconds == pytest.approx(0.37)


def test_v3_reserved_bits_are_ignored_on_receive() -> None:
    advert = receive(Crafted(word=0xF000 | 100).payload())

    assert isinstance(advert, Advert) and advert.interval == 100


def test_address_order_does_not_matter() -> None:
    assert isinstance(receive(Crafted(addresses=VIPS[::-1]).payload()), Advert)


def test_address_owner_may_list_other_addresses() -> None:
    # RFC 5798 §7.1: a mismatched list is dropped unless the advert comes from the owner.
    owner = Crafted(priority=255, addresses=(STRANGER,)).payload()

    advert = receive(owner)

    assert isinstance(advert, Advert) and advert.addresses == (STRANGER,)


def test_address_mismatch_accepted_when_configured() -> None:
    rules = replace(V3_RULES, accept_address_mismatch=True)

    assert isinstance(receive(Crafted(addresses=(STRANGER,)).payload(), rules), Advert)


def test_ttl_check_can_be_turned_off_for_routed_unicast_peers() -> None:
    rules = replace(V3_RULES, check_ttl=False)

    assert isinstance(receive(Crafted().payload(), rules, ttl=61), Advert)


def test_allowed_source_is_accepted() -> None:
    rules = replace(V3_RULES, allowed_sources=frozenset({PEER, STRANGER}))

    assert isinstance(receive(Crafted().payload(), rules), Advert)


def test_priority_zero_advert_is_accepted_for_the_machine_to_act_on() -> None:
    advert = receive(Crafted(priority=0).payload())

    assert isinstance(advert, Advert) and advert.priority == 0


def test_ipv6_advert_validated_against_ipv6_rules() -> None:
    vip6 = (IPv6Address("2001:db8::80"),)
    rules = ReceiveRules(3, 51, vip6, 100)
    wire = Crafted(addresses=vip6).payload(src=ME6, dst=VRRP_MULTICAST_V6)

    assert decode(wire, ME6, VRRP_MULTICAST_V6, 255, rules) == Advert(3, 51, 150, 100, vip6)
    wrong_dst = decode(wire, ME6, IPv6Address("ff02::1"), 255, rules)
    assert dropped(wrong_dst).reason is DropReason.CHECKSUM


def test_peek_vrid_picks_the_instance_before_decoding() -> None:
    assert peek_vrid(Crafted(vrid=77).payload()) == 77
    assert peek_vrid(b"\x31\x4d") is None


# --- interval bounds and argument checks -------------------------------------------------


@pytest.mark.parametrize(("version", "interval"), [(2, 1), (2, 255), (3, 1), (3, 4095)])
def test_interval_bounds_are_accepted_and_survive_the_wire(version: int, interval: int) -> None:
    advert = Advert(version, 51, 150, interval, VIPS)
    rules = ReceiveRules(version, 51, VIPS, interval)

    assert receive(encode(advert, PEER, VRRP_MULTICAST_V4), rules) == advert


@pytest.mark.parametrize(
    ("version", "interval", "unit"),
    [(2, 0, "seconds"), (2, 256, "seconds"), (3, 0, "centi"), (3, 4096, "centi")],
)
def test_interval_outside_the_version_range_is_refused(
    version: int, interval: int, unit: str
) -> None:
    with pytest.raises(ValueError, match=unit):
        Advert(version, 51, 150, interval, VIPS)
    with pytest.raises(ValueError, match=unit):
        ReceiveRules(version, 51, VIPS, interval)


def test_interval_seconds_per_version() -> None:
    assert Advert.v2(vrid=1, priority=1, advert_int_s=255, addresses=VIPS).interval_seconds == 255
    v3 = Advert.v3(vrid=1, priority=1, max_advert_int_cs=4095, addresses=VIPS)
    assert v3.interval_seconds == pytest.approx(40.95)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Advert(4, 51, 150, 100, VIPS), "version must be 2"),
        (lambda: Advert(3, 0, 150, 100, VIPS), "VRID must be 1..255"),
        (lambda: Advert(3, 256, 150, 100, VIPS), "VRID must be 1..255"),
        (lambda: Advert(3, 51, 256, 100, VIPS), "priority must be 0..255"),
        (lambda: Advert(3, 51, 150, 100, ()), "1..255 virtual addresses"),
        (lambda: Advert(3, 51, 150, 100, VIPS * 86), "1..255 virtual addresses"),
        (lambda: Advert(3, 51, 150, 100, (VIPS[0], ME6)), "one VRRP instance per address family"),
        (lambda: Advert(2, 51, 150, 1, (ME6,)), "IPv4-only"),
        (
            lambda: ReceiveRules(3, 51, (ME6,), 100, v3_checksum=V3Checksum.NO_PSEUDO_HEADER),
            "only for IPv4",
        ),
        (lambda: ReceiveRules(3, 51, VIPS, 100, allowed_sources=frozenset({ME6})), "not IPv4"),
        (lambda: encode(Advert(3, 51, 150, 100, VIPS), ME6, VRRP_MULTICAST_V6), "both be IPv4"),
        (lambda: receive(Crafted().payload(), dst=VRRP_MULTICAST_V6), "both be IPv4"),
        (lambda: pseudo_header(ME, ME6, 8), "both be IPv4"),
    ],
)
def test_misuse_is_refused_with_a_message_saying_what_to_do(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_255_addresses_fit_the_count_octet() -> None:
    addresses = tuple(IPv4Address(int(VIPS[0]) + i) for i in range(255))
    advert = Advert.v3(vrid=51, priority=150, max_advert_int_cs=100, addresses=addresses)

    wire = encode(advert, ME, VRRP_MULTICAST_V4)

    assert wire[3] == 255
    assert receive(wire, rules_for(advert), src=ME) == advert


# --- checksum helpers and parse_ipv4 ----------------------------------------------------


def test_internet_checksum_rfc_1071_example() -> None:
    # RFC 1071 §3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_internet_checksum_pads_odd_length_with_zero() -> None:
    assert internet_checksum(b"\x12\x34\x56") == internet_checksum(b"\x12\x34\x56\x00")


def test_pseudo_headers_have_the_rfc_layouts() -> None:
    assert pseudo_header(ME, VRRP_MULTICAST_V4, 20) == ME.packed + bytes.fromhex(
        "e0000012 0070 0014".replace(" ", "")
    )
    six = pseudo_header(ME6, VRRP_MULTICAST_V6, 24)
    assert six == ME6.packed + VRRP_MULTICAST_V6.packed + bytes.fromhex("00000018 00000070")


def test_vrrp_checksum_ignores_whatever_the_checksum_field_holds() -> None:
    wire = encode(KEEPALIVED_ADVERT, IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1"))
    garbled = wire[:6] + b"\xde\xad" + wire[8:]

    assert vrrp_checksum(garbled, 3, IPv4Address("10.1.0.3"), IPv4Address("10.1.0.1")) == 0x9C19


def ipv4(payload: bytes, *, ihl: int = 5, total: int | None = None, options: bytes = b"") -> bytes:
    total = 4 * ihl + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0xC0, total, 0, 0, 255, 112, 0,
                         PEER.packed, VRRP_MULTICAST_V4.packed)  # fmt: skip
    return header + options + payload


def test_parse_ipv4_skips_options() -> None:
    payload = Crafted().payload()

    packet = parse_ipv4(ipv4(payload, ihl=6, options=b"\x94\x04\x00\x00"))

    assert packet == IPv4Packet(PEER, VRRP_MULTICAST_V4, 255, 112, payload)


def test_parse_ipv4_cuts_bytes_beyond_total_length() -> None:
    payload = Crafted().payload()

    packet = parse_ipv4(ipv4(payload) + b"padding")

    assert isinstance(packet, IPv4Packet) and packet.payload == payload


@pytest.mark.parametrize(
    ("packet", "reason", "words"),
    [
        (ipv4(b"")[:19], "length", ["19-byte"]),
        (b"\x65" + ipv4(b"")[1:], "version", ["IP version 6"]),
        (ipv4(b"", ihl=4), "length", ["header length 16"]),
        (ipv4(b"", ihl=15), "length", ["header length 60"]),
        (ipv4(b"abcd", total=64), "length", ["total length 64"]),
        (ipv4(b"abcd", total=16), "length", ["total length 16"]),
    ],
    ids=[
        "short",
        "ipv6",
        "ihl-below-5",
        "ihl-beyond-packet",
        "total-beyond-packet",
        "total-in-header",
    ],
)
def test_parse_ipv4_rejects_inconsistent_lengths(
    packet: bytes, reason: str, words: list[str]
) -> None:
    drop = dropped(parse_ipv4(packet))

    assert drop.reason == reason
    for word in words:
        assert word in drop.detail
