"""Servers that are this node's own frontends, on a path that comes back: a loop.

A server whose address and port are one of the frontend binds sends its
traffic back into this Bascule. Chaining frontends that way is legitimate (a
tcp frontend in front of an http one); but when the chain leads back to a
frontend that uses the server's backend, every request is forwarded again and
again until a header grows too large. `validate` warns about each server on
such a loop (a warning: the run-time loop detection answers 508 anyway).

A server reaches a frontend when its port is the bind's and its address is the
bind's, or when the bind is a wildcard of the address's family and the address
is this host's: loopback, "localhost", or one `is_local` says the host has.
Other host names are not resolved here. Pure: the caller probes the host.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Iterator

from bascule.config.addresses import IPAddress
from bascule.config.findings import Path, format_path
from bascule.config.models import BindAddress, Config, FrontendConfig, ServerConfig
from bascule.errors import ConfigProblem

IsLocal = Callable[[IPAddress], bool]
_LOCALHOST = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def loop_warnings(config: Config, is_local: IsLocal | None = None) -> list[ConfigProblem]:
    """A warning for each server whose traffic would come back to its own backend."""
    return list(_LoopFinder(config, is_local or (lambda _address: False)).warnings())


class _LoopFinder:
    def __init__(self, config: Config, is_local: IsLocal) -> None:
        self.config = config
        self.is_local = is_local
        # port -> (frontend index, bind, bind address) of the frontends on that port
        self.binds: dict[int, list[tuple[int, BindAddress, IPAddress]]] = {}
        for index, frontend in enumerate(config.frontends):
            bind = frontend.bind
            entry = (index, bind, ipaddress.ip_address(bind.host))
            self.binds.setdefault(bind.port, []).append(entry)
        # The frontends each frontend sends traffic to (through its servers), built lazily.
        self._next: dict[int, set[int]] = {}

    def warnings(self) -> Iterator[ConfigProblem]:
        for backend_index, backend in enumerate(self.config.backends):
            users = self._users(backend.name)  # the same for every server of the backend
            for server_index, server in enumerate(backend.servers):
                for target in self._reached(server):
                    chain = self._chain(target, users)
                    if chain is not None:
                        yield self._warning(backend_index, server_index, server, chain)

    def _users(self, backend: str) -> set[int]:
        """The frontends that send traffic to `backend`."""
        return {
            index
            for index, frontend in enumerate(self.config.frontends)
            if backend in _backends_of(frontend)
        }

    def _reached(self, server: ServerConfig) -> list[int]:
        """The frontends a connection to `server` arrives at."""
        binds = self.binds.get(server.port)
        if not binds:
            return []
        addresses = _addresses(server.address)
        return [
            index
            for index, bind, host in binds
            if any(self._arrives(address, bind, host) for address in addresses)
        ]

    def _arrives(self, address: IPAddress, bind: BindAddress, host: IPAddress) -> bool:
        if address == host:
            return True
        if not bind.is_wildcard or bind.family != address.version:
            return False
        return address.is_loopback or address.is_unspecified or self.is_local(address)

    def _chain(self, start: int, goals: set[int]) -> list[int] | None:
        """The shortest chain of frontends from `start` to one of `goals`, both included."""
        previous: dict[int, int | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current in goals:
                chain = [current]
                while (before := previous[chain[-1]]) is not None:
                    chain.append(before)
                return chain[::-1]
            for following in self._following(current):
                if following not in previous:
                    previous[following] = current
                    queue.append(following)
        return None

    def _following(self, frontend_index: int) -> set[int]:
        """The frontends the servers of `frontend_index`'s backends reach."""
        known = self._next.get(frontend_index)
        if known is None:
            names = _backends_of(self.config.frontends[frontend_index])
            known = {
                target
                for backend in self.config.backends
                if backend.name in names
                for server in backend.servers
                for target in self._reached(server)
            }
            self._next[frontend_index] = known
        return known

    def _warning(
        self, backend_index: int, server_index: int, server: ServerConfig, chain: list[int]
    ) -> ConfigProblem:
        config = self.config
        backend = config.backends[backend_index]
        first = config.frontends[chain[0]]
        bind_line = config.line_of(("frontends", chain[0], "bind"))
        names = " -> ".join(f'"{config.frontends[index].name}"' for index in chain)
        through = f" (through {names})" if len(chain) > 1 else ""
        path: Path = ("backends", backend_index, "servers", server_index)
        return ConfigProblem(
            file=config.source,
            line=config.line_of((*path, "address")),
            path=format_path(path),
            message=f"{server.address}:{server.port} is this node's own frontend "
            f'"{first.name}" (bind {first.bind}, line {bind_line}), which sends traffic '
            f'back to backend "{backend.name}"{through}: each request would come back in '
            "and be forwarded again, in a loop",
            hint="point the server at the real service; a chain of frontends must not lead back",
            severity="warning",
        )


def _backends_of(frontend: FrontendConfig) -> set[str]:
    return {frontend.default_backend, *(route.backend for route in frontend.routes)}


def _addresses(address: str) -> tuple[IPAddress, ...]:
    """The IP addresses a server's address stands for, when that needs no resolver."""
    if address.lower().rstrip(".") == "localhost":
        return _LOCALHOST
    try:
        return (ipaddress.ip_address(address),)
    except ValueError:
        return ()  # a host name: resolved only when the proxy connects
