"""Rules that relate VRRP instances to each other and to the rest of the file.

Two instances with one name, or with one virtual router ID on one interface
(per address family: an IPv4 and an IPv6 router may share an ID); an address
listed twice (as a VIP of one or two instances, or in one list of router
addresses); one object tracked twice; a tracked backend that does not exist;
a frontend bound to a VIP whose instance would drop that traffic
(`accept_mode: false`). Like `checks.py`, they run on the plain data, so a bad
value elsewhere does not hide them, and they skip values validation reports.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, NamedTuple

from bascule.config.addresses import IPAddress, parse_host_address, parse_virtual_address
from bascule.config.checks import (
    Items,
    bind_address,
    duplicate_names,
    existing_backends_hint,
    mappings,
    names,
    whole,
)
from bascule.config.fieldtypes import OWNER_PRIORITY
from bascule.config.findings import Finding, InvalidValueError, Path
from bascule.config.yamlsource import LineMap

_INSTANCES: Path = ("vrrp", "instances")
_DEFAULT_WHEN = "no_server_up"


class _Router(NamedTuple):
    item: int
    name: str
    interface: str
    vrid: int
    family: int | None  # None: no readable virtual address to tell


def vrrp_cross_check(
    vrrp: object, frontends: object, backends: object, lines: LineMap
) -> list[Finding]:
    """Every relational problem of the `vrrp:` section (plain data, as written)."""
    instances = mappings(vrrp.get("instances")) if isinstance(vrrp, dict) else []
    findings = duplicate_names(_INSTANCES, "vrrp instance", instances, lines)
    findings += _shared_router_ids(instances, lines)
    findings += _virtual_addresses_listed_twice(instances, lines)
    backend_names = list(dict.fromkeys(names(mappings(backends))))
    for index, instance in instances:
        path = (*_INSTANCES, index)
        for key in ("unicast_peers", "allowed_sources"):
            findings += _router_addresses_listed_twice((*path, key), instance.get(key), lines)
        findings += _tracked_twice((*path, "track"), instance.get("track"), lines)
        findings += _tracked_backends_exist((*path, "track"), instance.get("track"), backend_names)
    findings += _frontends_on_refused_addresses(instances, mappings(frontends), lines)
    return findings


def _shared_router_ids(instances: Items, lines: LineMap) -> list[Finding]:
    earlier: list[_Router] = []
    findings = []
    for index, instance in instances:
        router = _router(index, instance)
        if router is None:
            continue
        clash = next((other for other in earlier if _same_router(router, other)), None)
        if clash is not None:
            line = lines.line_of((*_INSTANCES, clash.item, "virtual_router_id"))
            findings.append(
                Finding(
                    (*_INSTANCES, index, "virtual_router_id"),
                    f"virtual_router_id {router.vrid} is already used on {router.interface} "
                    f'by vrrp instance "{clash.name}" (line {line})',
                    "give each virtual router on an interface its own ID from 1 to 255; "
                    "an IPv4 and an IPv6 instance may share one",
                )
            )
        earlier.append(router)
    return findings


def _router(index: int, instance: dict[str, Any]) -> _Router | None:
    interface = instance.get("interface")
    vrid = whole(instance.get("virtual_router_id"))
    if not isinstance(interface, str) or vrid is None:
        return None
    families = [address.version for _, address in _virtual_addresses(instance)]
    name = instance.get("name")
    return _Router(
        index,
        name if isinstance(name, str) else f"#{index}",
        interface,
        vrid,
        families[0] if families else None,
    )


def _same_router(one: _Router, other: _Router) -> bool:
    same_family = one.family is None or other.family is None or one.family == other.family
    return one.interface == other.interface and one.vrid == other.vrid and same_family


def _virtual_addresses(instance: dict[str, Any]) -> list[tuple[int, Any]]:
    """(item, address) of each readable virtual address of `instance`."""
    written = instance.get("virtual_ipaddresses")
    if not isinstance(written, list):
        return []
    addresses = []
    for item, text in enumerate(written):
        try:
            addresses.append((item, parse_virtual_address(text)))
        except InvalidValueError:
            continue
    return addresses


def _virtual_addresses_listed_twice(instances: Items, lines: LineMap) -> list[Finding]:
    first: dict[IPAddress, tuple[int, Path]] = {}
    findings = []
    for index, instance in instances:
        for item, address in _virtual_addresses(instance):
            path = (*_INSTANCES, index, "virtual_ipaddresses", item)
            if address.ip not in first:
                first[address.ip] = (index, path)
                continue
            other_index, other_path = first[address.ip]
            line = lines.line_of(other_path)
            if other_index == index:
                message = f"{address.ip} is listed twice (first at line {line})"
                hint = "remove one of them"
            else:
                other = _instance_name(instances, other_index)
                message = (
                    f'{address.ip} is already a virtual address of vrrp instance "{other}" '
                    f"(line {line})"
                )
                hint = "an address moves with one virtual router only: remove it from one"
            findings.append(Finding(path, message, hint))
    return findings


def _instance_name(instances: Items, index: int) -> str:
    name = dict(instances)[index].get("name")
    return name if isinstance(name, str) else f"#{index}"


def _router_addresses_listed_twice(path: Path, written: object, lines: LineMap) -> list[Finding]:
    if not isinstance(written, list):
        return []
    first: dict[IPAddress, int] = {}
    findings = []
    for item, text in enumerate(written):
        try:
            address = parse_host_address(text)
        except InvalidValueError:
            continue
        if address in first:
            line = lines.line_of((*path, first[address]))
            findings.append(
                Finding(
                    (*path, item),
                    f"{address} is listed twice (first at line {line})",
                    "remove one of them",
                )
            )
        else:
            first[address] = item
    return findings


def _tracked_twice(path: Path, track: object, lines: LineMap) -> list[Finding]:
    first: dict[tuple[object, ...], int] = {}
    findings = []
    for item, entry in mappings(track):
        key = _tracked_object(entry)
        if key is None:
            continue
        if key in first:
            line = lines.line_of((*path, first[key]))
            findings.append(
                Finding(
                    (*path, item),
                    f"tracks {' '.join(map(str, key[:2]))} again (first at line {line})",
                    "remove one of them: each tracked object counts once",
                )
            )
        else:
            first[key] = item
    return findings


def _tracked_object(entry: dict[str, Any]) -> tuple[object, ...] | None:
    """What an entry watches: ("backend", "web", "degraded"), ("interface", "eth1"), ..."""
    targets = [key for key in ("backend", "interface", "script") if isinstance(entry.get(key), str)]
    if len(targets) != 1:
        return None
    kind = targets[0]
    if kind == "backend":
        when = entry.get("when", _DEFAULT_WHEN)
        return (kind, entry[kind], when.strip().lower()) if isinstance(when, str) else None
    if kind == "script":
        args = entry.get("args", [])
        plain = isinstance(args, list) and all(isinstance(arg, str | int) for arg in args)
        return (kind, entry[kind], *args) if plain else None
    return (kind, entry[kind])


def _tracked_backends_exist(path: Path, track: object, backend_names: list[str]) -> list[Finding]:
    return [
        Finding(
            (*path, item, "backend"),
            f'no backend named "{entry["backend"]}"',
            existing_backends_hint(entry["backend"], backend_names),
        )
        for item, entry in mappings(track)
        if isinstance(entry.get("backend"), str) and entry["backend"] not in backend_names
    ]


def _frontends_on_refused_addresses(
    instances: Items, frontends: Items, lines: LineMap
) -> list[Finding]:
    """accept_mode false drops packets for the VIPs on a non-owner MASTER (RFC 5798 §6.1)."""
    findings = []
    for index, instance in instances:
        if instance.get("accept_mode") is not False:
            continue
        if whole(instance.get("priority")) == OWNER_PRIORITY:
            continue
        virtual = {address.ip for _, address in _virtual_addresses(instance)}
        for frontend_index, frontend in frontends:
            bind = bind_address(frontend.get("bind"))
            if bind is None or bind.is_wildcard or ip_address(bind.host) not in virtual:
                continue
            name = frontend.get("name")
            line = lines.line_of(("frontends", frontend_index, "bind"))
            findings.append(
                Finding(
                    (*_INSTANCES, index, "accept_mode"),
                    f'false drops the traffic of frontend "{name}" (bind {bind}, line {line}) '
                    "whenever this node is MASTER without owning the address",
                    "remove accept_mode: false, as the default is true, "
                    "or bind the frontend to another address",
                )
            )
    return findings
