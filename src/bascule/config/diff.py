"""What changed between two configurations, in words, for reload logs.

`diff(old, new)` lists frontends, backends, servers and VRRP instances added,
removed or changed, with the settings that changed ("backend app changed: algorithm
round_robin -> least_connections"). Settings are compared field by field, so
a new setting shows up here without any change to this module.

A server's health check is reported on the server only where it differs from
its backend's: a backend's new check interval is one line, not one per server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bascule.config.fieldtypes import ShownAs
from bascule.config.models import (
    AgentCheckConfig,
    BackendConfig,
    BackendTimeouts,
    CheckConfig,
    CommandCheckConfig,
    Config,
    FrontendConfig,
    FrontendTimeouts,
    HttpCheckConfig,
    HttpLimits,
    PassiveConfig,
    ServerConfig,
    format_status_ranges,
)
from bascule.config.units import format_duration, format_percent, format_size
from bascule.config.vrrp import GarpConfig, NotifyConfig, VrrpInstance

# Nested settings reported key by key ("timeouts.connect 2s -> 3s") rather than whole.
_SECTIONS = (
    FrontendTimeouts,
    BackendTimeouts,
    HttpLimits,
    PassiveConfig,
    CheckConfig,
    HttpCheckConfig,
    CommandCheckConfig,
    AgentCheckConfig,
    GarpConfig,
    NotifyConfig,
)
# Compared on their own: a backend's servers each get their own line.
_NOT_SETTINGS = ("name", "servers")

Named = TypeVar("Named", FrontendConfig, BackendConfig, ServerConfig, VrrpInstance)


def diff(old: Config, new: Config) -> list[str]:
    """Human-readable changes from `old` to `new`; empty if they are equivalent."""
    changes = [
        f"global changed: {change}" for change in _changed_settings(old.global_, new.global_)
    ]
    changes += _diff_named("frontend ", old.frontends, new.frontends, _describe_frontend)
    changes += _diff_named("backend ", old.backends, new.backends, _describe_backend)
    old_backends = {backend.name: backend for backend in old.backends}
    for backend in new.backends:
        if backend.name in old_backends:
            changes += _diff_servers(old_backends[backend.name], backend)
    changes += _diff_named(
        "vrrp instance ", old.vrrp.instances, new.vrrp.instances, _describe_instance
    )
    return changes


def same_server(old: ServerConfig, new: ServerConfig) -> bool:
    """What a reload treats as the same server (its state carries over): the same
    address, port and health check. Weight, limits and the rest may change."""
    return (old.address, old.port, old.check) == (new.address, new.port, new.check)


def _diff_servers(old: BackendConfig, new: BackendConfig) -> list[str]:
    def inherited_check(before: ServerConfig, after: ServerConfig) -> frozenset[str]:
        follows_backend = before.check == old.check and after.check == new.check
        return frozenset({"check"}) if follows_backend else frozenset()

    return _diff_named(
        f"server {new.name}/", old.servers, new.servers, _describe_server, inherited_check
    )


def _nothing_skipped(before: object, after: object) -> frozenset[str]:
    return frozenset()


def _diff_named(
    label: str,
    old: Sequence[Named],
    new: Sequence[Named],
    describe: Callable[[Named], str],
    skip: Callable[[Named, Named], frozenset[str]] = _nothing_skipped,
) -> list[str]:
    old_by_name = {item.name: item for item in old}
    new_names = {item.name for item in new}
    changes = []
    for item in new:
        before = old_by_name.get(item.name)
        if before is None:
            changes.append(f"{label}{item.name} added ({describe(item)})")
            continue
        settings = list(_changed_settings(before, item, skip=skip(before, item)))
        if settings:
            changes.append(f"{label}{item.name} changed: {'; '.join(settings)}")
    changes += [f"{label}{item.name} removed" for item in old if item.name not in new_names]
    return changes


def _changed_settings(
    old: BaseModel, new: BaseModel, prefix: str = "", skip: frozenset[str] = frozenset()
) -> Iterator[str]:
    for name, field in type(old).model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if name in _NOT_SETTINGS or name in skip or before == after:
            continue
        if isinstance(before, _SECTIONS) and isinstance(after, _SECTIONS):
            yield from _changed_settings(before, after, prefix=f"{prefix}{name}.")
        else:
            yield f"{prefix}{name} {_show(before, field)} -> {_show(after, field)}"


def _show(value: object, field: FieldInfo) -> str:
    unit = next((item.unit for item in field.metadata if isinstance(item, ShownAs)), None)
    if unit == "duration" and isinstance(value, float):
        return format_duration(value)
    if unit == "size" and isinstance(value, int):
        return format_size(value)
    if unit == "fraction" and isinstance(value, float):
        # round(): 0.07 * 100 is 7.000000000000001, and the admin wrote "7%".
        return format_percent(round(value * 100, 9))
    if unit == "status" and isinstance(value, tuple):
        return format_status_ranges(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def _describe_frontend(frontend: FrontendConfig) -> str:
    return f"{frontend.mode} on {frontend.bind}, default_backend {frontend.default_backend}"


def _describe_backend(backend: BackendConfig) -> str:
    count = len(backend.servers)
    check = f", {backend.check.type} check" if backend.check.enabled else ""
    return f"{backend.algorithm}, {count} server{'' if count == 1 else 's'}{check}"


def _describe_server(server: ServerConfig) -> str:
    host = f"[{server.address}]" if ":" in server.address else server.address
    backup = ", backup" if server.backup else ""
    return f"{host}:{server.port}, weight {server.weight}{backup}"


def _describe_instance(instance: VrrpInstance) -> str:
    addresses = ", ".join(str(address) for address in instance.virtual_ipaddresses)
    return (
        f"{instance.interface} vrid {instance.virtual_router_id} priority {instance.priority}, "
        f"{addresses}"
    )
