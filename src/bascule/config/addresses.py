"""Address syntax: frontend `bind`, server `address`, route `host`, `trusted_networks`, and
VRRP's interface names, virtual addresses (with their prefix) and router addresses.

Only syntax is checked here; nothing is resolved or bound (host names are
resolved at startup, ports are opened by the listeners). Pure functions.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from bascule.config.findings import InvalidValueError, show

BIND_FORMS = '"ip:port", "[ipv6]:port", "*:8080" (all IPv4) or "[::]:8080" (all IPv6)'
IPV4_ANY = "0.0.0.0"
IPV6_ANY = "::"

# RFC 1123 labels, plus "_" because container platforms hand out such names.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_SPACE = re.compile(r"\s")


def parse_bind(text: object) -> tuple[str, int, int]:
    """Split a bind address into (host, port, family); the host comes back normalised."""
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not an address", f"write {BIND_FORMS}")
    stripped = text.strip()
    if stripped.startswith("["):
        host, port_text = _split_bracketed(stripped)
        return _ipv6_bind_host(host, stripped), _bind_port(port_text, stripped), 6
    if stripped.startswith("*:"):
        return IPV4_ANY, _bind_port(stripped[2:], stripped), 4
    if stripped.count(":") > 1:
        raise InvalidValueError(
            f'"{stripped}" looks like an IPv6 address without brackets',
            'put IPv6 addresses in brackets: "[::1]:8080", "[::]:8080"',
        )
    if ":" not in stripped:
        raise InvalidValueError(f'"{stripped}" has no port', f"write {BIND_FORMS}")
    host, port_text = stripped.split(":")
    return _ipv4_bind_host(host, stripped), _bind_port(port_text, stripped), 4


def _split_bracketed(text: str) -> tuple[str, str]:
    host, separator, port_text = text[1:].partition("]:")
    if not separator:
        raise InvalidValueError(f'"{text}" has no port after the brackets', f"write {BIND_FORMS}")
    return host, port_text


def _ipv6_bind_host(host: str, text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(host))
    except ValueError:
        raise InvalidValueError(
            f'"{host}" in "{text}" is not an IPv6 address',
            'brackets are only for IPv6, e.g. "[::1]:8080"; write IPv4 as "127.0.0.1:8080"',
        ) from None


def _ipv4_bind_host(host: str, text: str) -> str:
    if not host:
        raise InvalidValueError(f'"{text}" has no address before the port', 'write "*:8080"')
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        raise InvalidValueError(
            f'"{host}" in "{text}" is not an IP address',
            "bind needs an IP address, not a host name: "
            'e.g. "127.0.0.1:8080" for localhost or "*:8080" for all IPv4 addresses',
        ) from None


def _bind_port(port_text: str, text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidValueError(
            f'port "{port_text}" in "{text}" is not a TCP port',
            "use a TCP port between 1 and 65535",
        )
    return int(port_text)


def check_server_address(text: object) -> str:
    """Return `text` if it is an IPv4 address, an IPv6 address or a host name."""
    hint = "write an IPv4 address, an IPv6 address without brackets, or a host name"
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not an address", hint)
    if not text:
        raise InvalidValueError("is empty", hint)
    if _SPACE.search(text):
        raise InvalidValueError(f"{show(text)} contains spaces", hint)
    if "[" in text or "]" in text:
        raise InvalidValueError(
            f"{show(text)} has brackets",
            f"write IPv6 addresses without brackets ({text.strip('[]')}); the port goes in port",
        )
    if "://" in text or "/" in text:
        raise InvalidValueError(f"{show(text)} is not a host", f"{hint}; no scheme or path")
    if ":" in text:
        return _ipv6_server_address(text)
    if _DOTTED_NUMBERS.match(text):
        return _ipv4_server_address(text)
    if not is_host_name(text):
        raise InvalidValueError(f"{show(text)} is not a valid host name", hint)
    return text


def _ipv6_server_address(text: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        if text.count(":") == 1:
            raise InvalidValueError(
                f"{show(text)} looks like host:port", "put the host in address and the port in port"
            ) from None
        raise InvalidValueError(
            f"{show(text)} is not a valid IPv6 address", "e.g. 2001:db8::10"
        ) from None
    return text


def _ipv4_server_address(text: str) -> str:
    try:
        # What IPv4Address accepts (four decimal octets, no leading zero), 50 times faster.
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        raise InvalidValueError(
            f"{show(text)} is not a valid IPv4 address", "e.g. 10.0.0.11"
        ) from None
    return text


def is_host_name(text: str) -> bool:
    """True for a syntactically valid DNS name (a trailing dot is allowed)."""
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def check_route_host(text: object) -> str:
    """Return a route's host pattern, lower-cased: "api.example.com" or "*.example.com"."""
    hint = 'write a host name such as "api.example.com", or "*.example.com" for any subdomain'
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not a host name", hint)
    if ":" in text:
        raise InvalidValueError(
            f"{show(text)} has a port",
            "routes match the Host header with the port ignored; remove it",
        )
    if text in ("*", "*."):
        raise InvalidValueError(
            f"{show(text)} matches every host", "leave host out to match every host"
        )
    name = text[2:] if text.startswith("*.") else text
    if not is_host_name(name) or (_DOTTED_NUMBERS.match(name) and not _is_ipv4(name)):
        raise InvalidValueError(f"{show(text)} is not a valid host name", hint)
    return text.lower().rstrip(".")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def request_host_name(host: str) -> str:
    """The name part of a request's Host header, lower-cased, without port or final dot."""
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.lower().rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    """Does a route host pattern match a request host name (already normalised)?

    "*.example.com" matches one or more labels in front of "example.com" but not
    "example.com" itself, like HAProxy's `hdr_end(host) -i .example.com`.
    """
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


# --- VRRP: interfaces, virtual addresses, peers ----------------------------------------------

# Linux refuses longer names (IFNAMSIZ is 16 bytes with the final NUL), and names
# containing '/', ':' or white space (net/core/dev.c, dev_valid_name).
MAX_INTERFACE_NAME = 15
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def check_interface_name(text: object) -> str:
    """Return `text` if Linux would accept it as a network interface name."""
    hint = "write the name `ip link` shows, e.g. eth0"
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not an interface name", hint)
    if not text:
        raise InvalidValueError("is empty", hint)
    if ":" in text:
        raise InvalidValueError(
            f"{show(text)} is an address label, not an interface",
            f"write the interface itself ({text.split(':')[0]}); "
            "virtual addresses are added to it without a label",
        )
    if text in (".", "..") or any(char == "/" or not char.isprintable() for char in text):
        raise InvalidValueError(f"{show(text)} is not a valid interface name", hint)
    if _SPACE.search(text):
        raise InvalidValueError(f"{show(text)} contains spaces", hint)
    if len(text.encode()) > MAX_INTERFACE_NAME:
        raise InvalidValueError(
            f"{show(text)} is longer than {MAX_INTERFACE_NAME} bytes, which Linux refuses", hint
        )
    return text


def parse_virtual_address(text: object) -> IPInterface:
    """Read a virtual IP written with its prefix length: "198.18.0.100/24" or "2001:db8::10/64"."""
    hint = 'write the address and the prefix of its subnet, e.g. "198.18.0.100/24"'
    if isinstance(text, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return text
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not an address with a prefix", hint)
    stripped = text.strip()
    if any(char.isspace() for char in stripped):
        # keepalived allows "198.18.0.100/24 dev eth1 label eth1:1" here.
        raise InvalidValueError(
            f"{show(text)} has words after the address",
            "options such as dev, label or scope are not supported: every virtual address "
            "goes on the instance's interface; write the address alone",
        )
    if "/" not in stripped:
        raise InvalidValueError(
            f"{show(text)} has no prefix length",
            f'write "{stripped}/24" with the prefix of the subnet it belongs to, '
            f'or "{stripped}/32" for a lone address as keepalived assumes',
        )
    try:
        address = ipaddress.ip_interface(stripped)
    except ValueError:
        raise InvalidValueError(f"{show(text)} is not an IP address with a prefix", hint) from None
    _check_usable(address.ip, text, "a virtual address")
    _check_not_network_or_broadcast(address, text)
    return address


def _check_not_network_or_broadcast(address: IPInterface, text: object) -> None:
    network = address.network
    # /31 and /32 (RFC 3021) have no network or broadcast address to avoid.
    if address.version != 4 or network.prefixlen > 30:
        return
    for special, what in (
        (network.network_address, "network"),
        (network.broadcast_address, "broadcast"),
    ):
        if address.ip == special:
            raise InvalidValueError(
                f"{show(text)} is the {what} address of {network}",
                f"use a host address of {network}, e.g. {network.network_address + 1}",
            )


def parse_host_address(text: object) -> IPAddress:
    """Read one IP address without prefix or brackets (a unicast peer or an advert source)."""
    hint = "write one IPv4 or IPv6 address, e.g. 198.18.0.12"
    if isinstance(text, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return text
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not an IP address", hint)
    stripped = text.strip()
    if "/" in stripped:
        raise InvalidValueError(
            f"{show(text)} has a prefix length",
            f"write the address alone: {stripped.split('/')[0]}",
        )
    try:
        address = ipaddress.ip_address(stripped.strip("[]"))
    except ValueError:
        raise InvalidValueError(
            f"{show(text)} is not an IP address", f"{hint}; host names are not resolved here"
        ) from None
    _check_usable(address, text, "a router address")
    return address


def parse_trusted_network(text: object) -> str:
    """Read a network in CIDR notation ("10.0.0.0/8", "2001:db8::/32") or one address
    (a /32 or /128); return it normalised ("10.0.0.0/8")."""
    hint = 'write a network such as "10.0.0.0/8" or "2001:db8::/32", or one address'
    if not isinstance(text, str):
        raise InvalidValueError(f"{show(text)} is not a network", hint)
    stripped = text.strip()
    try:
        return str(ipaddress.ip_network(stripped))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(stripped, strict=False)
    except ValueError:
        raise InvalidValueError(
            f"{show(text)} is not a network", f"{hint}; host names are not resolved here"
        ) from None
    raise InvalidValueError(
        f"{show(text)} has host bits set after the prefix length", f"did you mean {network}?"
    )


def _check_usable(address: IPAddress, text: object, what: str) -> None:
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        kind = (
            "unspecified"
            if address.is_unspecified
            else "multicast"
            if address.is_multicast
            else "loopback"
        )
        raise InvalidValueError(
            f"{show(text)} is a {kind} address, which cannot be {what}",
            "use an address of the network the routers share",
        )
