"""Servers that are one of this node's own frontends: what is sent there comes back.

A backend server whose address and port are where a frontend of the same config listens
sends traffic back into Bascule. In mode http each such request is refused with 508 Loop
Detected (proxy/http_policy.py); in mode tcp nothing can tell, and each connection loops
until file descriptors run out. `validate` warns about it. Which addresses are this
node's is a fact of the host: the caller passes them in (none with `--no-host`, which
still finds loopback addresses and a bind's own address), so this module stays pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from bascule.config.addresses import IPAddress
from bascule.config.findings import Path, format_path
from bascule.config.models import BindAddress, Config, FrontendConfig
from bascule.errors import ConfigProblem


def servers_on_own_frontends(config: Config, local: Collection[IPAddress]) -> list[ConfigProblem]:
    """A warning for each server that is a frontend of `config` on a host whose addresses
    are `local`; sorted by line."""
    problems: list[ConfigProblem] = []
    for backend_index, backend in enumerate(config.backends):
        for server_index, server in enumerate(backend.servers):
            try:
                address = ipaddress.ip_address(server.address)
            except ValueError:
                continue  # a host name: resolved only at start
            for frontend in config.frontends:
                if _listens_on(frontend.bind, address, server.port, local):
                    path: Path = ("backends", backend_index, "servers", server_index, "address")
                    problems.append(_warning(config, path, server.address, frontend))
                    break
    return sorted(problems, key=lambda problem: problem.line or 0)


def _listens_on(
    bind: BindAddress, address: IPAddress, port: int, local: Collection[IPAddress]
) -> bool:
    if bind.port != port or bind.family != address.version:
        return False
    if bind.is_wildcard:
        return address.is_loopback or address.is_unspecified or address in local
    return ipaddress.ip_address(bind.host) == address


def _warning(config: Config, path: Path, address: str, frontend: FrontendConfig) -> ConfigProblem:
    if frontend.mode == "http":
        outcome = "each request comes back to it and gets 508 Loop Detected"
    else:
        outcome = "each connection comes back to it, over and over, until file descriptors run out"
    return ConfigProblem(
        file=config.source,
        line=config.line_of(path),
        path=format_path(path),
        message=f"{address}:{frontend.bind.port} is where frontend {frontend.name} listens: "
        f"{outcome}",
        hint="point the server at the application, not at a frontend of this node",
        severity="warning",
    )
