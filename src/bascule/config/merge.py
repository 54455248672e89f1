"""Fill each frontend, backend and server with the values of `defaults:`.

Merging happens on the plain data, before validation, so that a value a
frontend sets itself is validated (and reported) at its own line, and a value
taken from `defaults:` is the already-validated default. Anything that is not
shaped as expected is passed through untouched for validation to report.

Health checks merge in two steps: `defaults.check` under each backend's
`check:`, then the backend's under each server's own `check:` (a server
without one takes the backend's check when the backend is validated).
"""

from __future__ import annotations

from typing import Any

from bascule.config.models import DefaultsSection

# Sections that may be left empty in YAML (all children commented out): an empty
# `timeouts:` reads as null, and means the same as no `timeouts:` at all.
_OPTIONAL_SECTIONS = ("timeouts", "http", "routes", "passive", "hash_key", "check")
# The sub-blocks of a check, each named after the check type it configures.
_CHECK_BLOCKS = ("http", "command", "agent")
_DEFAULT_CHECK_TYPE = "none"


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
        {
            "client": defaults.timeouts.client,
            "http_request": defaults.timeouts.http_request,
            "http_keep_alive": defaults.timeouts.http_keep_alive,
        },
    )
    mode = merged.get("mode")
    if not (isinstance(mode, str) and mode.strip().lower() == "tcp"):
        # HTTP settings: a tcp frontend would refuse them (checks.py).
        _fill(
            merged,
            {"trusted_networks": defaults.trusted_networks, "forwarded": defaults.forwarded},
        )
    return merged


def _merge_backend(backend: object, defaults: DefaultsSection) -> object:
    if not isinstance(backend, dict):
        return backend
    merged = _without_empty_sections(backend)
    _fill(
        merged,
        {
            "algorithm": defaults.algorithm,
            "retries": defaults.retries,
            "slow_start": defaults.slow_start,
            "on_down": defaults.on_down,
            "min_healthy": defaults.min_healthy,
        },
    )
    _fill_section(
        merged,
        "timeouts",
        {"connect": defaults.timeouts.connect, "server": defaults.timeouts.server},
    )
    _fill_section(merged, "passive", defaults.passive.model_dump())
    default_check = defaults.check.model_dump(exclude_none=True)
    if default_check:
        merged["check"] = overlay_check(default_check, merged.get("check", {}))
    servers = merged.get("servers")
    if isinstance(servers, list):
        backend_check = merged.get("check")
        inherited = backend_check if isinstance(backend_check, dict) else {}
        merged["servers"] = [_merge_server(server, defaults, inherited) for server in servers]
    return merged


def _merge_server(
    server: object, defaults: DefaultsSection, backend_check: dict[str, Any]
) -> object:
    if not isinstance(server, dict):
        return server
    merged = dict(server)
    _fill(merged, defaults.server.model_dump())
    if merged.get("check", {}) is None:
        del merged["check"]  # an empty `check:` overrides nothing
    if "check" in merged:
        merged["check"] = overlay_check(backend_check, merged["check"])
    return merged


def overlay_check(base: dict[str, Any], own: object) -> object:
    """The check `own` describes, with every key it leaves out taken from `base`.

    Sub-blocks (`http:`, ...) merge key by key, so a server can change only the
    path of its backend's http check. A sub-block of `base` is only carried
    over while the check keeps its type: a server that turns its backend's
    http check into `type: tcp` or `type: none` does not inherit `http:`.
    """
    if not isinstance(own, dict):
        return own
    merged = {**base, **own}
    kind = merged.get("type", _DEFAULT_CHECK_TYPE)
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    for block in _CHECK_BLOCKS:
        inherited = base.get(block) if kind == block else None
        given = own.get(block)
        if isinstance(inherited, dict) and isinstance(given, dict):
            merged[block] = {**inherited, **given}
        elif block in own:
            merged[block] = given
        elif inherited is not None:
            merged[block] = inherited
        else:
            merged.pop(block, None)
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
