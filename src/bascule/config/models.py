"""The validated, frozen configuration model that the rest of Bascule reads.

Every object carries concrete values: `defaults:` has already been merged in
by the loader, so callers never look at it. Field-level rules (ranges,
syntax, the few rules that relate fields of one small object) live here, so
they also hold for configs built in code; rules that relate objects to each
other (names, references, binds) live in `checks.py`.

`DefaultsSection` describes the `defaults:` block of the file; it is only used
while loading.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bascule.config.addresses import IPV4_ANY, IPV6_ANY, host_matches, parse_bind, request_host_name
from bascule.config.fieldtypes import (
    AlgorithmName,
    Boolean,
    Duration,
    HashSource,
    HeaderCount,
    HttpToken,
    InitialState,
    LogLevel,
    MaxConnections,
    MaxFails,
    Mode,
    Name,
    PathPrefix,
    Port,
    PositiveDuration,
    PositiveSize,
    Retries,
    RouteHost,
    ServerAddress,
    Weight,
    config_error,
)
from bascule.config.findings import InvalidValueError


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GlobalConfig(_Frozen):
    """`global:` settings of the daemon."""

    grace: Duration = 10.0
    log_level: LogLevel = "info"


class FrontendTimeouts(_Frozen):
    """Client-side timeouts in seconds (HAProxy `timeout client`, `timeout http-request`)."""

    client: PositiveDuration = 30.0
    http_request: PositiveDuration = 10.0


class BackendTimeouts(_Frozen):
    """Server-side timeouts in seconds (HAProxy `timeout connect`, `timeout server`)."""

    connect: PositiveDuration = 2.0
    server: PositiveDuration = 30.0


class HttpLimits(_Frozen):
    """Bounds on a request head; beyond them the client gets 431 or 414."""

    max_header_bytes: PositiveSize = 32768
    max_headers: HeaderCount = 100
    max_request_line: PositiveSize = 8192


class PassiveConfig(_Frozen):
    """Passive health: consecutive failures that mark a server down (nginx max_fails)."""

    max_fails: MaxFails = 3
    fail_timeout: PositiveDuration = 10.0


class BindAddress(_Frozen):
    """Where a frontend listens; `host` is a normalised IP ("0.0.0.0" and "::" mean all)."""

    host: str
    port: Port
    family: Literal[4, 6]

    @classmethod
    def parse(cls, text: str) -> BindAddress:
        """Read "ip:port", "[ipv6]:port", "*:port"; raises ValueError with a hint."""
        host, port, family = parse_bind(text)
        return cls(host=host, port=port, family=4 if family == 4 else 6)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == 6 else f"{self.host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return self.host in (IPV4_ANY, IPV6_ANY)

    def overlaps(self, other: BindAddress) -> bool:
        """Would both binds fight over a port? A wildcard covers its whole family.

        "[::]" is taken to cover IPv6 only: listeners set IPV6_V6ONLY (asyncio does).
        """
        if self.port != other.port or self.family != other.family:
            return False
        return self.host == other.host or self.is_wildcard or other.is_wildcard


class RouteConfig(_Frozen):
    """One routing rule of an http frontend; the first rule that matches wins."""

    host: RouteHost | None = None
    path_prefix: PathPrefix | None = None
    backend: Name

    @model_validator(mode="after")
    def _matches_something(self) -> RouteConfig:
        if self.host is None and self.path_prefix is None:
            raise config_error(
                "a route needs host, path_prefix or both",
                "add a condition; requests no route matches go to default_backend",
            )
        return self

    def matches(self, host: str | None, path: str) -> bool:
        """Does a request for `host` (Host header, port allowed) and `path` take this route?

        Host names compare case-insensitively without the port; the path prefix is
        a plain string prefix, like nginx `location /v1` (so it also matches /v10).
        """
        if self.host is not None and (
            host is None or not host_matches(self.host, request_host_name(host))
        ):
            return False
        return self.path_prefix is None or path.partition("?")[0].startswith(self.path_prefix)

    def __str__(self) -> str:
        """ "api.example.com/v1 -> api", the way diff and logs show a route."""
        return f"{self.host or '*'}{self.path_prefix or ''} -> {self.backend}"


class FrontendConfig(_Frozen):
    """A listener: where clients connect and which backend gets their traffic."""

    name: Name
    bind: BindAddress
    mode: Mode = "http"
    default_backend: Name
    max_connections: MaxConnections = 10000
    timeouts: FrontendTimeouts = Field(default_factory=FrontendTimeouts)
    http: HttpLimits = Field(default_factory=HttpLimits)
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("bind", mode="before")
    @classmethod
    def _parse_bind(cls, value: object) -> object:
        if isinstance(value, BindAddress):
            return value
        try:
            host, port, family = parse_bind(value)
        except InvalidValueError as problem:
            raise config_error(problem.message, problem.hint) from None
        return {"host": host, "port": port, "family": family}


class HashKeyConfig(_Frozen):
    """What the `hash` algorithm hashes: the URI, a header or a cookie."""

    source: HashSource
    name: HttpToken | None = Field(default=None, validate_default=True)

    @field_validator("name")
    @classmethod
    def _name_matches_source(cls, name: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if source in ("header", "cookie") and name is None:
            example = "X-User-Id" if source == "header" else "session_id"
            raise config_error(f"source {source} needs a name", f"add name: {example}")
        if source == "uri" and name is not None:
            raise config_error(
                "name is only used with source header or cookie",
                "remove name, or set source: header or source: cookie",
            )
        return name

    def __str__(self) -> str:
        return self.source if self.name is None else f"{self.source} {self.name}"


class ServerConfig(_Frozen):
    """One server of a backend (HAProxy `server` line)."""

    name: Name
    address: ServerAddress
    port: Port
    weight: Weight = 1
    backup: Boolean = False
    max_connections: MaxConnections = 0
    initial_state: InitialState = "up"


class BackendConfig(_Frozen):
    """A pool of servers and how traffic is spread over them."""

    name: Name
    algorithm: AlgorithmName = "round_robin"
    # Declared after `algorithm` so that its validator can see the algorithm.
    hash_key: HashKeyConfig | None = Field(default=None, validate_default=True)
    retries: Retries = 3
    timeouts: BackendTimeouts = Field(default_factory=BackendTimeouts)
    passive: PassiveConfig = Field(default_factory=PassiveConfig)
    servers: tuple[ServerConfig, ...] = Field(min_length=1)

    @field_validator("hash_key")
    @classmethod
    def _hash_key_matches_algorithm(
        cls, hash_key: HashKeyConfig | None, info: ValidationInfo
    ) -> HashKeyConfig | None:
        algorithm = info.data.get("algorithm")
        if algorithm == "hash" and hash_key is None:
            raise config_error(
                "algorithm hash needs hash_key",
                "add hash_key: {source: uri}, or source header/cookie with a name",
                line_of="algorithm",
            )
        if algorithm not in (None, "hash") and hash_key is not None:
            raise config_error(
                f"hash_key is only used with algorithm hash, not {algorithm}",
                "set algorithm: hash, or remove hash_key",
            )
        return hash_key


class Config(_Frozen):
    """The whole configuration, as loaded from `source`."""

    model_config = ConfigDict(populate_by_name=True)

    global_: GlobalConfig = Field(default_factory=GlobalConfig, validation_alias="global")
    frontends: tuple[FrontendConfig, ...] = Field(min_length=1)
    backends: tuple[BackendConfig, ...] = Field(min_length=1)
    source: str = "<config>"

    def backend(self, name: str) -> BackendConfig:
        """The backend called `name`; KeyError if there is none."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(f"no backend named {name!r} in {self.source}")

    def summary(self) -> str:
        """One line such as "2 frontends, 3 backends, 7 servers"."""
        servers = sum(len(backend.servers) for backend in self.backends)
        return ", ".join(
            _count(n, noun)
            for n, noun in (
                (len(self.frontends), "frontend"),
                (len(self.backends), "backend"),
                (servers, "server"),
            )
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class _DefaultTimeouts(_Frozen):
    connect: PositiveDuration | None = None
    server: PositiveDuration | None = None
    client: PositiveDuration | None = None
    http_request: PositiveDuration | None = None


class _DefaultPassive(_Frozen):
    max_fails: MaxFails | None = None
    fail_timeout: PositiveDuration | None = None


class _DefaultServer(_Frozen):
    weight: Weight | None = None
    max_connections: MaxConnections | None = None


class DefaultsSection(_Frozen):
    """The `defaults:` block: values every frontend/backend/server gets unless it sets its own.

    None means "not set here"; the built-in defaults of the models above apply.
    """

    mode: Mode | None = None
    timeouts: _DefaultTimeouts = Field(default_factory=_DefaultTimeouts)
    retries: Retries | None = None
    passive: _DefaultPassive = Field(default_factory=_DefaultPassive)
    algorithm: AlgorithmName | None = None
    server: _DefaultServer = Field(default_factory=_DefaultServer)
    max_connections: MaxConnections | None = None
