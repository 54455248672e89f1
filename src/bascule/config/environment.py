"""Checks of the `vrrp:` section against the host that runs it.

Whether an interface exists and which addresses it has are facts of the live
system, which `load_config` does not look at: a file is validated on a laptop
before it is deployed. The caller gathers the facts (netlink, `ip -j addr`)
and passes them in, so this module stays pure.

Errors: an interface, the instance's or a tracked one, that does not exist; an
interface with no address to send adverts from (for IPv6, a link-local one)
when `unicast_source` is not set; a `unicast_source` this host does not have.
Warnings: a virtual address outside every subnet of its interface (hosts on
that link reach it only through a route), and a virtual address already on the
interface of a node that does not own it (it is removed at start, and added
back only while MASTER).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface, IPv6Interface, IPv6Network
from typing import Literal

from bascule.config.addresses import IPAddress
from bascule.config.findings import Path, format_path
from bascule.config.models import Config
from bascule.config.vrrp import VrrpInstance
from bascule.errors import ConfigProblem

InterfaceAddresses = Mapping[str, Sequence[IPv4Interface | IPv6Interface]]
Severity = Literal["error", "warning"]

_LINK_LOCAL_V6 = IPv6Network("fe80::/10")


def vrrp_environment_problems(
    config: Config, interfaces: InterfaceAddresses
) -> list[ConfigProblem]:
    """What stops (errors) or endangers (warnings) `config`'s VRRP on a host whose
    interfaces have these addresses; sorted by line. Empty without VRRP instances."""
    problems: list[ConfigProblem] = []
    for index, instance in enumerate(config.vrrp.instances):
        path: Path = ("vrrp", "instances", index)
        found = _InstanceCheck(config, path, instance, interfaces)
        problems += found.problems()
    return sorted(problems, key=lambda problem: problem.line or 0)


class _InstanceCheck:
    """The host checks of one instance; `problems()` runs them."""

    def __init__(
        self,
        config: Config,
        path: Path,
        instance: VrrpInstance,
        interfaces: InterfaceAddresses,
    ) -> None:
        self.config = config
        self.path = path
        self.instance = instance
        self.interfaces = interfaces
        self.found: list[ConfigProblem] = []

    def problems(self) -> list[ConfigProblem]:
        self._tracked_interfaces_exist()
        name = self.instance.interface
        if name not in self.interfaces:
            self._report(("interface",), f'no interface "{name}" on this host', self._others(name))
            return self.found
        own = [
            address for address in self.interfaces[name] if address.version == self.instance.family
        ]
        self._advert_source(own)
        self._virtual_addresses(own)
        return self.found

    def _tracked_interfaces_exist(self) -> None:
        for index, entry in enumerate(self.instance.track):
            name = entry.interface
            if name is not None and name not in self.interfaces:
                self._report(
                    ("track", index, "interface"),
                    f'no interface "{name}" on this host',
                    self._others(name),
                )

    def _advert_source(self, own: list[IPv4Interface | IPv6Interface]) -> None:
        instance = self.instance
        source = instance.unicast_source
        if source is not None:
            if source not in self._host_addresses():
                self._report(
                    ("unicast_source",),
                    f"{source} is not an address of this host",
                    f"adverts can only come from an address the host has; "
                    f"{instance.interface} has {_listing(own)}",
                )
            return
        real = [address for address in own if address.ip not in instance.virtual_addresses]
        if instance.family == 4 and not real:
            self._report(
                ("interface",),
                f"{instance.interface} has no IPv4 address to send adverts from",
                f"give {instance.interface} this node's own address, or set unicast_source",
            )
        if instance.family == 6 and not any(address.ip in _LINK_LOCAL_V6 for address in real):
            self._report(
                ("interface",),
                f"{instance.interface} has no IPv6 link-local address to send adverts from "
                "(RFC 5798 §5.1.2.1)",
                f"enable IPv6 on {instance.interface}; it then gets an fe80:: address",
            )

    def _virtual_addresses(self, own: list[IPv4Interface | IPv6Interface]) -> None:
        instance = self.instance
        on_interface = {address.ip for address in own}
        # A leftover VIP says nothing about the link's subnets; the owner's VIP is its own.
        real = [
            address
            for address in own
            if instance.is_address_owner or address.ip not in instance.virtual_addresses
        ]
        for index, vip in enumerate(instance.virtual_ipaddresses):
            where: Path = ("virtual_ipaddresses", index)
            if not any(vip.ip in address.network for address in real):
                self._report(
                    where,
                    f"{vip} is outside every subnet of {instance.interface} ({_listing(real)})",
                    "hosts on that link reach it only through a route: "
                    "check the address and its prefix",
                    "warning",
                )
            if vip.ip in on_interface and not instance.is_address_owner:
                self._report(
                    where,
                    f"{vip.ip} is already on {instance.interface}",
                    "it is removed at start and added back only while MASTER; "
                    "if it is this node's own address, use priority 255",
                    "warning",
                )

    def _host_addresses(self) -> set[IPAddress]:
        return {address.ip for addresses in self.interfaces.values() for address in addresses}

    def _others(self, name: str) -> str:
        names = sorted(self.interfaces)
        if not names:
            return "this host reports no interfaces"
        listing = f"interfaces here: {', '.join(names)}"
        close = difflib.get_close_matches(name, names, n=1)
        return f'did you mean "{close[0]}"? {listing}' if close else listing

    def _report(self, where: Path, message: str, hint: str, severity: Severity = "error") -> None:
        path = (*self.path, *where)
        self.found.append(
            ConfigProblem(
                file=self.config.source,
                line=self.config.line_of(path),
                path=format_path(path),
                message=message,
                hint=hint,
                severity=severity,
            )
        )


def _listing(addresses: Sequence[IPv4Interface | IPv6Interface]) -> str:
    return ", ".join(str(address) for address in addresses) or "no address of that family"
