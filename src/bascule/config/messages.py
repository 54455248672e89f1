"""Translate pydantic validation errors into findings an admin can act on.

Our own validators (see `fieldtypes.py`) already carry a message and a hint;
this module handles the errors pydantic raises itself (missing or unknown
keys, a list where a mapping belongs, ...). Nothing pydantic-specific (error
type names, documentation URLs, "Input should be ...") survives translation.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bascule.config.fieldtypes import ERROR_TYPE
from bascule.config.findings import Finding, Path, show

_DOCS_HINT = "see docs/configuration.md"

# Keys HAProxy, nginx and keepalived users reach for, and what they are called here.
KEY_SYNONYMS: Mapping[str, str] = {
    "maxconn": "max_connections",
    "balance": "algorithm",
    "timeout": "timeouts",
    "server": "servers",
    "default-server": "defaults.server",
    "default_server": "defaults.server",
    "use_backend": "routes",
    "addr": "address",
    "ip": "address",
    "host": "address",
    "max_fails": "passive.max_fails",
    "fail_timeout": "passive.fail_timeout",
    "hard-stop-after": "global.grace",
    # HTTP limits, written at the frontend's top level or in nginx's words.
    "max_request_body": "http.max_request_body",
    "client_max_body_size": "http.max_request_body",
    "max_header_bytes": "http.max_header_bytes",
    "max_headers": "http.max_headers",
    "max_request_line": "http.max_request_line",
    "keepalive_timeout": "timeouts.http_keep_alive",
    "http_keep_alive": "timeouts.http_keep_alive",
    "http_request": "timeouts.http_request",
    # Health checks, in HAProxy's and Envoy's words.
    "inter": "interval",
    "fastinter": "fast_interval",
    "downinter": "down_interval",
    "spread-checks": "jitter",
    "spread_checks": "jitter",
    "slowstart": "slow_start",
    "on-marked-down": "on_down",
    "on_marked_down": "on_down",
    "httpchk": "check.http",
    "agent-check": "check.agent",
    "external-check": "check.command",
    "agent-port": "check.agent.port",
    "agent-send": "check.agent.send",
    "uri": "path",
    "expect": "expect_status",
    "error-limit": "passive.max_fails",
    "max_ejection_percent": "max_ejected_percent",
    "base_ejection_time": "fail_timeout",
    # VRRP, in keepalived's words.
    "vrrp_instance": "vrrp.instances",
    "vrrp_instances": "vrrp.instances",
    "advert_int": "advert_interval",
    "vrrp_version": "version",
    "vrid": "virtual_router_id",
    "virtual_ipaddress": "virtual_ipaddresses",
    "unicast_src_ip": "unicast_source",
    "mcast_src_ip": "unicast_source",
    "unicast_peer": "unicast_peers",
    "nopreempt": "preempt: false",
    "accept": "accept_mode",
    "no_accept": "accept_mode: false",
    "garp_master_delay": "garp.repeat_after",
    "garp_master_repeat": "garp.count",
    "garp_master_refresh": "garp.refresh",
    "garp_master_refresh_repeat": "garp.refresh_count",
    "garp_interval": "garp.interval",
    "notify_master": "notify.master",
    "notify_backup": "notify.backup",
    "notify_fault": "notify.fault",
    "notify_stop": "notify.stop",
    "track_interface": "track",
    "track_script": "track",
    "old_unicast_checksum": "v3_checksum: old_unicast",
    "v3_checksum_as_v2": "v3_checksum: as_v2",
}

# keepalived settings with no counterpart, and why; only said inside a vrrp instance.
_VRRP_ONLY_IN_KEEPALIVED: Mapping[str, str] = {
    "state": "keepalived's state only sets where an instance starts; here the election "
    "decides, so give the node that should be MASTER the higher priority",
    "authentication": "RFC 5798 removed VRRP authentication (keepalived's PASS sends the "
    "password in clear); restrict senders with unicast_peers or allowed_sources",
}

# Keys for what Bascule does not do yet, where they would be written (a frontend
# has `bind`, a server `address`): the error says so and what works today instead.
_TLS_TERMINATION = (
    "TLS termination is not supported yet",
    "to serve HTTPS today, pass TLS through to servers that terminate it: mode: tcp on "
    'this frontend (bind: "*:443") and the servers\' TLS port; Bascule then balances '
    "connections, not requests. See README, What Bascule does not do yet",
)
_TLS_TO_SERVERS = (
    "TLS to servers is not supported yet",
    "servers get plain HTTP or TCP from Bascule; to keep TLS end to end, pass the "
    "client's TLS through a mode: tcp frontend to the servers' TLS port",
)
_NOT_YET: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "bind": dict.fromkeys(
        ("tls", "ssl", "crt", "cert", "certificate", "certificates", "alpn"), _TLS_TERMINATION
    ),
    "address": dict.fromkeys(("tls", "ssl", "verify", "sni", "ca_file"), _TLS_TO_SERVERS),
}

_REQUIRED_HINTS: Mapping[str, str] = {
    "frontends": "add a frontends: list; see examples/minimal.yaml",
    "backends": "add a backends: list; see examples/minimal.yaml",
    "name": "add name: followed by a unique name",
    "bind": 'add bind: "0.0.0.0:8080"',
    "servers": "add servers: with at least one server",
    "address": "add address: followed by an IP address or host name",
    "port": "add port: followed by a TCP port",
    "backend": "add backend: followed by the name of a backend",
    "source": "add source: uri, header or cookie",
    "interface": "add interface: followed by the interface name, e.g. eth0",
    "virtual_router_id": "add virtual_router_id: 1-255, the same on every node of this "
    "virtual router",
    "virtual_ipaddresses": 'add virtual_ipaddresses: ["198.18.0.100/24"]',
}

_EMPTY_LIST_HINTS: Mapping[str, str] = {
    "frontends": "add at least one frontend",
    "backends": "add at least one backend",
    "servers": "add at least one server",
    "virtual_ipaddresses": 'add at least one address with its prefix, e.g. "198.18.0.100/24"',
}


def findings_from(
    error: ValidationError, root: type[BaseModel], prefix: Path = ()
) -> list[Finding]:
    """One finding per pydantic error of validating `root` at `prefix` of the document."""
    findings = []
    for detail in error.errors(include_url=False):
        finding = _translate(detail, root)
        if finding is not None:
            findings.append(
                Finding(
                    path=(*prefix, *finding.path),
                    message=finding.message,
                    hint=finding.hint,
                    line_path=(*prefix, *finding.line_path) if finding.line_path else None,
                )
            )
    return findings


def _translate(detail: ErrorDetails, root: type[BaseModel]) -> Finding | None:
    loc: Path = tuple(detail["loc"])
    kind = detail["type"]
    value = detail["input"]
    context: dict[str, Any] = dict(detail.get("ctx") or {})
    field = str(loc[-1]) if loc else ""
    if kind == ERROR_TYPE:
        sibling = context.get("line_of")
        line_path = (*loc[:-1], sibling) if sibling else None
        item = context.get("item")
        at: Path = loc if item is None else (*loc, int(item))
        return Finding(at, context["message"], context["hint"], line_path=line_path)
    if kind == "missing":
        return _missing(loc, field)
    if kind == "extra_forbidden":
        return _unknown_key(loc, field, _allowed_keys(root, loc[:-1]))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return _not_a_mapping(loc, value)
    if kind in ("tuple_type", "list_type"):
        return _not_a_list(loc, value)
    if kind == "too_short":
        return _empty_list(loc, field, value, context)
    return Finding(loc, _plain(detail["msg"], value), _DOCS_HINT)


def _missing(loc: Path, field: str) -> Finding:
    if field == "default_backend":
        return Finding(
            loc,
            "no backend reachable: default_backend is missing",
            "add default_backend: followed by the backend that gets requests no route matches",
        )
    return Finding(loc, "required but missing", _REQUIRED_HINTS.get(field, _DOCS_HINT))


def unknown_key(loc: Path, allowed: list[str]) -> Finding:
    """The finding for a key the schema does not know, with the keys it does."""
    return _unknown_key(loc, str(loc[-1]), allowed)


def _unknown_key(loc: Path, key: str, allowed: list[str]) -> Finding:
    listing = f"allowed here: {', '.join(allowed)}"
    for marker, keys in _NOT_YET.items():
        if key in keys and marker in allowed:
            message, hint = keys[key]
            return Finding(loc, f'unknown key "{key}": {message}', hint)
    if key in _VRRP_ONLY_IN_KEEPALIVED and "virtual_router_id" in allowed:
        suggestion = f"{_VRRP_ONLY_IN_KEEPALIVED[key]}; "
    elif key in KEY_SYNONYMS and _applies_here(KEY_SYNONYMS[key], allowed):
        suggestion = f'"{key}" is called "{KEY_SYNONYMS[key]}" here; '
    else:
        close = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f'did you mean "{close[0]}"? ' if close else ""
    return Finding(loc, f'unknown key "{key}"', suggestion + listing)


def _applies_here(synonym: str, allowed: list[str]) -> bool:
    # "host" means "address" in a server but is a valid key of a route; only
    # suggest a synonym that is usable where the unknown key was written.
    # A synonym may carry its value ("preempt: false").
    return synonym.split(".")[0].split(":")[0] in allowed


def _not_a_mapping(loc: Path, value: object) -> Finding:
    if value is None:
        return Finding(loc, "is empty", "add keys under it, or remove it")
    return Finding(loc, f"expected keys and values, got {show(value)}", "write key: value lines")


def _not_a_list(loc: Path, value: object) -> Finding:
    if value is None:
        return Finding(loc, "is empty", _EMPTY_LIST_HINTS.get(str(loc[-1]), "add items to it"))
    return Finding(
        loc, f"expected a list, got {show(value)}", 'write each item on its own line after "- "'
    )


def _empty_list(loc: Path, field: str, value: object, context: dict[str, Any]) -> Finding | None:
    # Pydantic also says "too short" when every item failed to validate; those
    # items already have their own findings, so only a truly short list counts.
    if isinstance(value, list | tuple) and len(value) >= int(context.get("min_length", 1)):
        return None
    return Finding(loc, "must not be empty", _EMPTY_LIST_HINTS.get(field, "add an item"))


def _plain(message: str, value: object) -> str:
    text = message.removeprefix("Input ").removeprefix("Value ")
    return f"{show(value)}: {text}"


def _allowed_keys(root: type[BaseModel], loc: Path) -> list[str]:
    model = model_at(root, loc)
    if model is None:
        return []
    return [
        str(info.validation_alias) if isinstance(info.validation_alias, str) else name
        for name, info in model.model_fields.items()
    ]


def model_at(root: type[BaseModel], loc: Path) -> type[BaseModel] | None:
    """The model class that validates the node at `loc` below `root`, if it is a model."""
    current: Any = root
    for part in loc:
        current = _item_type(current) if isinstance(part, int) else _field_type(current, part)
        if current is None:
            return None
    return current if _is_model(current) else None


def _field_type(model: Any, key: str) -> Any:
    if not _is_model(model):
        return None
    for name, info in model.model_fields.items():
        if key in (name, info.validation_alias):
            return _without_none(info.annotation)
    return None


def _item_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (tuple, list):
        return _without_none(typing.get_args(annotation)[0])
    return None


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else None
    return annotation


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)
