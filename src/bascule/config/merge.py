"""Fill each frontend, backend and server with the values of `defaults:`.

Merging happens on the plain data, before validation, so that a value a
frontend sets itself is validated (and reported) at its own line, and a value
taken from `defaults:` is the already-validated default. Anything that is not
shaped as expected is passed through untouched for validation to report.
"""

from __future__ import annotations

from typing import Any

from bascule.config.models import DefaultsSection

# Sections that may be left empty in YAML (all children commented out): an empty
# `timeouts:` reads as null, and means the same as no `timeouts:` at all.
_OPTIONAL_SECTIONS = ("timeouts", "http", "routes", "passive", "hash_key")


def merge_frontends(frontends: object, defaults: DefaultsSection) -> object:
    if not isinstance(frontends, list):
        return frontends
    return [_merge_frontend(frontend, defaults) for frontend in frontends]


def merge_backends(backends: object, defaults: DefaultsSection) -> object:
    if not isinstance(backends, list):
        return backends
    return [_merge_backend(backend, defaults) for backend in backends]


def _merge_frontend(frontend: object, defaults: DefaultsSection) -> object:
    if not isinstance(frontend, dict):
        return frontend
    merged = _without_empty_sections(frontend)
    _fill(merged, {"mode": defaults.mode, "max_connections": defaults.max_connections})
    _fill_section(
        merged,
        "timeouts",
        {"client": defaults.timeouts.client, "http_request": defaults.timeouts.http_request},
    )
    return merged


def _merge_backend(backend: object, defaults: DefaultsSection) -> object:
    if not isinstance(backend, dict):
        return backend
    merged = _without_empty_sections(backend)
    _fill(merged, {"algorithm": defaults.algorithm, "retries": defaults.retries})
    _fill_section(
        merged,
        "timeouts",
        {"connect": defaults.timeouts.connect, "server": defaults.timeouts.server},
    )
    _fill_section(merged, "passive", defaults.passive.model_dump())
    servers = merged.get("servers")
    if isinstance(servers, list):
        merged["servers"] = [_merge_server(server, defaults) for server in servers]
    return merged


def _merge_server(server: object, defaults: DefaultsSection) -> object:
    if not isinstance(server, dict):
        return server
    merged = dict(server)
    _fill(merged, defaults.server.model_dump())
    return merged


def _without_empty_sections(item: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in item.items()
        if not (key in _OPTIONAL_SECTIONS and value is None)
    }


def _fill(target: dict[str, Any], values: dict[str, Any]) -> None:
    """Set each value that is not None, unless `target` sets that key itself."""
    for key, value in values.items():
        if value is not None and key not in target:
            target[key] = value


def _fill_section(target: dict[str, Any], section: str, values: dict[str, Any]) -> None:
    given = {key: value for key, value in values.items() if value is not None}
    current = target.get(section)
    if not given or (current is not None and not isinstance(current, dict)):
        return
    target[section] = {**given, **(current or {})}
