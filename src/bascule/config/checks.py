"""Rules that relate configuration objects to each other.

Unique names, backends that exist, binds that do not collide, a backend that
can take traffic, http-only sections on http frontends, http-only passive
checks on backends that http frontends use, a health check for servers that
wait for one. They run on the merged
plain data rather than on validated models so that one bad value elsewhere (a
port out of range) does not hide them: each rule looks only at the values it
needs and quietly skips values that validation reports anyway.
"""

from __future__ import annotations

import difflib
from typing import Any

from bascule.config.findings import Finding, InvalidValueError, Path
from bascule.config.models import BindAddress, CheckConfig, FrontendConfig, ServerConfig
from bascule.config.yamlsource import LineMap

_DEFAULT_MODE = FrontendConfig.model_fields["mode"].default
_DEFAULT_WEIGHT = ServerConfig.model_fields["weight"].default
_DEFAULT_BACKUP = ServerConfig.model_fields["backup"].default
_DEFAULT_CHECK_TYPE = CheckConfig.model_fields["type"].default

Items = list[tuple[int, dict[str, Any]]]


def cross_check(frontends: object, backends: object, lines: LineMap) -> list[Finding]:
    """Every relational problem of the (defaults-merged) frontends and backends."""
    frontend_items = mappings(frontends)
    backend_items = mappings(backends)
    backend_names = list(dict.fromkeys(names(backend_items)))
    findings = duplicate_names(("frontends",), "frontend", frontend_items, lines)
    findings += duplicate_names(("backends",), "backend", backend_items, lines)
    for index, backend in backend_items:
        path = ("backends", index, "servers")
        findings += duplicate_names(path, "server", mappings(backend.get("servers")), lines)
        findings += _traffic(path, backend.get("servers"))
        findings += _check_first_needs_a_check(("backends", index), backend)
    for index, frontend in frontend_items:
        findings += _references(("frontends", index), frontend, backend_names)
        findings += _http_only_sections(("frontends", index), frontend)
    findings += _bind_conflicts(frontend_items, lines)
    findings += _http_only_passive(frontend_items, backend_items, lines)
    return findings


def mappings(items: object) -> Items:
    """The (index, item) of each mapping in a list; anything else is left to validation."""
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def names(items: Items) -> list[str]:
    """The names that are text, in order (duplicates kept)."""
    return [item["name"] for _, item in items if isinstance(item.get("name"), str)]


def duplicate_names(path: Path, noun: str, items: Items, lines: LineMap) -> list[Finding]:
    """A finding at each item whose name an earlier item of `path` already has."""
    first_index: dict[str, int] = {}
    findings = []
    for index, item in items:
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if name not in first_index:
            first_index[name] = index
            continue
        first_line = lines.line_of((*path, first_index[name], "name"))
        findings.append(
            Finding(
                (*path, index, "name"),
                f'duplicate {noun} name "{name}" (first used at line {first_line})',
                f"give each {noun} a unique name",
            )
        )
    return findings


def _references(path: Path, frontend: dict[str, Any], backend_names: list[str]) -> list[Finding]:
    references: list[tuple[Path, object]] = [
        ((*path, "default_backend"), frontend.get("default_backend"))
    ]
    for index, route in mappings(frontend.get("routes")):
        references.append(((*path, "routes", index, "backend"), route.get("backend")))
    return [
        Finding(where, f'no backend named "{name}"', existing_backends_hint(name, backend_names))
        for where, name in references
        if isinstance(name, str) and name not in backend_names
    ]


def existing_backends_hint(name: str, backend_names: list[str]) -> str:
    """ "did you mean "app"? existing backends: app, api", for a name that is not one."""
    if not backend_names:
        return "define it under backends:"
    listing = f"existing backends: {', '.join(backend_names)}"
    close = difflib.get_close_matches(name, backend_names, n=1)
    return f'did you mean "{close[0]}"? {listing}' if close else listing


def _http_only_sections(path: Path, frontend: dict[str, Any]) -> list[Finding]:
    mode = frontend.get("mode", _DEFAULT_MODE)
    if not (isinstance(mode, str) and mode.strip().lower() == "tcp"):
        return []
    findings = []
    if frontend.get("routes"):
        findings.append(
            Finding(
                (*path, "routes"),
                "routes only work in mode http, and this frontend is mode tcp",
                "remove routes, or set mode: http",
            )
        )
    if "http" in frontend:
        findings.append(
            Finding(
                (*path, "http"),
                "http limits only apply in mode http, and this frontend is mode tcp",
                "remove http, or set mode: http",
            )
        )
    for key in ("trusted_networks", "forwarded"):
        if key in frontend:
            findings.append(
                Finding(
                    (*path, key),
                    f"{key} applies to forwarding headers in mode http, and this frontend "
                    "is mode tcp",
                    f"remove {key}, or set mode: http",
                )
            )
    return findings


def _http_only_passive(frontends: Items, backends: Items, lines: LineMap) -> list[Finding]:
    """consecutive_5xx counts HTTP responses, which a backend only tcp frontends use never sees."""
    users = _frontends_by_backend(frontends)
    findings = []
    for index, backend in backends:
        where: Path = ("backends", index, "passive", "consecutive_5xx")
        # Set in `defaults:`, it is meant for the backends http frontends use.
        if not lines.written(where):
            continue
        passive = backend.get("passive")
        count = whole(passive.get("consecutive_5xx")) if isinstance(passive, dict) else None
        name = backend.get("name")
        using = users.get(name, []) if isinstance(name, str) else []
        if count is None or count <= 0 or not using or any(mode != "tcp" for _, mode in using):
            continue
        findings.append(
            Finding(
                where,
                "consecutive_5xx counts HTTP responses, and this backend is only used "
                f"by mode tcp frontends ({', '.join(user for user, _ in using)})",
                "remove consecutive_5xx; max_fails still counts failed connections",
            )
        )
    return findings


def _frontends_by_backend(frontends: Items) -> dict[str, list[tuple[str, str]]]:
    """backend name -> (frontend name, mode) of each frontend that sends it traffic."""
    users: dict[str, list[tuple[str, str]]] = {}
    for index, frontend in frontends:
        mode = frontend.get("mode", _DEFAULT_MODE)
        mode = mode.strip().lower() if isinstance(mode, str) else ""
        name = frontend.get("name")
        user = (name if isinstance(name, str) else f"#{index}", mode)
        targets = [frontend.get("default_backend")]
        targets += [route.get("backend") for _, route in mappings(frontend.get("routes"))]
        for target in dict.fromkeys(target for target in targets if isinstance(target, str)):
            users.setdefault(target, []).append(user)
    return users


def _check_first_needs_a_check(path: Path, backend: dict[str, Any]) -> list[Finding]:
    """A server that starts DOWN until a check passes needs a check that can pass."""
    backend_type = _check_type(backend.get("check", {}))
    findings = []
    for index, server in mappings(backend.get("servers")):
        state = server.get("initial_state")
        if not (isinstance(state, str) and state.strip().lower() == "check_first"):
            continue
        # A server's own `check:` is already merged over its backend's.
        kind = _check_type(server["check"]) if "check" in server else backend_type
        if kind == "none":
            findings.append(
                Finding(
                    (*path, "servers", index, "initial_state"),
                    "check_first waits for a passing health check, and this server has none",
                    "give the backend a check, e.g. check: {type: tcp}, or use initial_state: down",
                )
            )
    return findings


def _check_type(check: object) -> str | None:
    """The type of a plain check mapping, lower-cased; None if it cannot be told."""
    if not isinstance(check, dict):
        return None
    kind = check.get("type", _DEFAULT_CHECK_TYPE)
    return kind.strip().lower() if isinstance(kind, str) else None


def _traffic(path: Path, servers: object) -> list[Finding]:
    """A backend whose every candidate server has weight 0 can never serve a request."""
    if not isinstance(servers, list) or not servers:
        return []
    weighted: list[tuple[int, bool]] = []
    for server in servers:
        if not isinstance(server, dict):
            return []
        weight = whole(server.get("weight", _DEFAULT_WEIGHT))
        backup = server.get("backup", _DEFAULT_BACKUP)
        if weight is None or not isinstance(backup, bool):
            return []  # validation reports the bad value; the sum would mean nothing
        weighted.append((weight, backup))
    primaries = [weight for weight, backup in weighted if not backup]
    if primaries and not any(primaries):
        which = "every server" if len(primaries) == len(weighted) else "every non-backup server"
    elif not primaries and not any(weight for weight, _ in weighted):
        which = "every server"
    else:
        return []
    return [
        Finding(
            path,
            f"no server can take traffic: {which} has weight 0",
            "give at least one server a weight of 1 or more",
        )
    ]


def whole(value: object) -> int | None:
    """A whole number written as one (or as digits); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _bind_conflicts(frontends: Items, lines: LineMap) -> list[Finding]:
    earlier: list[tuple[int, str, BindAddress]] = []
    findings = []
    for index, frontend in frontends:
        bind = bind_address(frontend.get("bind"))
        if bind is None:
            continue
        clash = next(((i, n, b) for i, n, b in earlier if b.overlaps(bind)), None)
        if clash is not None:
            findings.append(_bind_conflict(index, bind, clash, lines))
        name = frontend.get("name")
        earlier.append((index, name if isinstance(name, str) else f"#{index}", bind))
    return findings


def bind_address(value: object) -> BindAddress | None:
    """The bind `value` describes; None if it does not (validation reports why)."""
    if not isinstance(value, str):
        return None
    try:
        return BindAddress.parse(value)
    except InvalidValueError:
        return None


def _bind_conflict(
    index: int, bind: BindAddress, clash: tuple[int, str, BindAddress], lines: LineMap
) -> Finding:
    other_index, other_name, other = clash
    other_line = lines.line_of(("frontends", other_index, "bind"))
    message = f'{bind} conflicts with {other} of frontend "{other_name}" (line {other_line})'
    wildcard = bind if bind.is_wildcard else other
    if bind.host != other.host:
        message += f"; {wildcard.host} means every IPv{wildcard.family} address"
    return Finding(
        ("frontends", index, "bind"),
        message,
        "use another port, or bind each frontend to its own address",
    )
