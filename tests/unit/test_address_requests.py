"""The VIP add/remove request bytes and the reading of the kernel's acknowledgement."""

from __future__ import annotations

import errno
import struct
from ipaddress import ip_interface

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # type: ignore[import-untyped]

from bascule.vrrp.address_requests import (
    RTM_DELADDR,
    RTM_NEWADDR,
    acknowledgements,
    address_message,
)


def decoded(data: bytes) -> ifaddrmsg:
    message = ifaddrmsg(data)
    message.decode()
    return message


def test_ipv4_add_is_exclusive_labelled_marked_and_has_local_and_address() -> None:
    data = address_message(
        RTM_NEWADDR, 7, ip_interface("198.18.0.10/24"), label="eth0:vrrp", proto=0xBA, seq=42
    )
    message = decoded(data)
    assert message["header"]["type"] == RTM_NEWADDR
    assert message["header"]["sequence_number"] == 42
    assert message["header"]["flags"] == 0x1 | 0x4 | 0x200 | 0x400  # REQUEST ACK EXCL CREATE
    assert (message["index"], message["prefixlen"]) == (7, 24)
    assert message.get("IFA_LOCAL") == message.get("IFA_ADDRESS") == "198.18.0.10"
    assert message.get("IFA_LABEL") == "eth0:vrrp"
    assert message.get("IFA_PROTO") == 0xBA


def test_ipv6_add_skips_duplicate_address_detection_and_has_no_label() -> None:
    data = address_message(
        RTM_NEWADDR, 3, ip_interface("2001:2::10/64"), label="x", proto=0xBA, seq=1
    )
    message = decoded(data)
    assert message["flags"] & 0x02  # IFA_F_NODAD
    assert message.get("IFA_LABEL") is None
    assert message.get("IFA_ADDRESS") == "2001:2::10"


def test_delete_names_the_exact_prefix_and_creates_nothing() -> None:
    data = address_message(
        RTM_DELADDR, 7, ip_interface("198.18.0.10/24"), label=None, proto=None, seq=5
    )
    message = decoded(data)
    assert message["header"]["flags"] == 0x1 | 0x4
    assert message["prefixlen"] == 24
    assert message.get("IFA_LABEL") is None


def ack(seq: int, error: int) -> bytes:
    return struct.pack("=IHHIIi", 36, 2, 0, seq, 0, -error) + bytes(16)


def test_acknowledgements_give_each_sequence_number_with_its_errno() -> None:
    assert list(acknowledgements(ack(9, 0))) == [(9, 0)]
    assert list(acknowledgements(ack(8, errno.EEXIST) + ack(9, 0))) == [
        (8, errno.EEXIST),
        (9, 0),
    ]


def test_malformed_answer_is_not_an_acknowledgement() -> None:
    assert list(acknowledgements(struct.pack("=IHHII", 0, 2, 0, 9, 0))) == []
    assert list(acknowledgements(struct.pack("=IHHII", 16, 2, 0, 9, 0))) == []  # no errno
    assert list(acknowledgements(b"\x01\x02")) == []
