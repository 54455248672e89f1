"""The validated, frozen configuration model that the rest of Bascule reads.

Every object carries concrete values: `defaults:` has already been merged in
by the loader, so callers never look at it, and every server carries its
effective health check (its backend's, with its own overrides on top).
Field-level rules (ranges, syntax, the few rules that relate fields of one
small object, such as a check's timeout and interval) live here, so they also
hold for configs built in code; rules that relate objects to each other
(names, references, binds, which frontends use a backend) live in `checks.py`.

`DefaultsSection` describes the `defaults:` block of the file; it is only used
while loading.
"""

from __future__ import annotations

import math
import shlex
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bascule.config.addresses import IPV4_ANY, IPV6_ANY, host_matches, parse_bind, request_host_name
from bascule.config.fieldtypes import (
    AgentPort,
    AlgorithmName,
    BodyRegex,
    BodySize,
    BodyText,
    Boolean,
    CheckBodySize,
    CheckType,
    CommandArgument,
    CommandPath,
    Consecutive5xx,
    Duration,
    Fall,
    ForwardedMode,
    HashSource,
    HeaderCount,
    HttpCheckPath,
    HttpHost,
    HttpMethod,
    HttpToken,
    InitialState,
    Jitter,
    LogLevel,
    MaxConnections,
    MaxFails,
    Mode,
    Name,
    OnDown,
    PathPrefix,
    Percent,
    Port,
    PositiveDuration,
    PositiveSize,
    Retries,
    Rise,
    RouteHost,
    ServerAddress,
    StatusRanges,
    Text,
    TrustedNetwork,
    Weight,
    config_error,
    min_healthy_fields,
    timeout_within_interval,
)
from bascule.config.findings import InvalidValueError, Path
from bascule.config.units import format_duration, format_percent
from bascule.config.vrrp import VrrpConfig
from bascule.config.yamlsource import LineMap

# HAProxy's defaults (`inter 2s rise 2 fall 3`), and Envoy's cap on an ejection.
DEFAULT_CHECK_INTERVAL = 2.0
MAX_DEFAULT_CHECK_TIMEOUT = 2.0
DEFAULT_MAX_EJECTION_TIME = 300.0


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_CONTROL_SOCKET = "/run/bascule/bascule.sock"


def _absolute_path(value: object) -> object:
    """An absolute path, or None for `none` (as YAML's null)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    if isinstance(value, str) and not value.startswith("/"):
        raise config_error(
            f"{value!r} is not an absolute path", "write the full path, starting with /"
        )
    return value


LocalPath = Annotated[str | None, BeforeValidator(_absolute_path)]


class GlobalConfig(_Frozen):
    """`global:` settings of the daemon."""

    grace: Duration = 10.0
    log_level: LogLevel = "info"
    # Written at start, removed at stop (as nginx's `pid` and HAProxy's `pidfile`).
    pid_file: LocalPath = None
    # The unix socket that `bascule reload` (and later the admin commands) talk to;
    # none turns it off (SIGHUP still reloads).
    control_socket: LocalPath = DEFAULT_CONTROL_SOCKET


class FrontendTimeouts(_Frozen):
    """Client-side timeouts in seconds (HAProxy `timeout client`, `timeout http-request`,
    `timeout http-keep-alive`).

    `http_keep_alive` is the idle time allowed between two requests of a connection; like
    HAProxy's, it defaults to `http_request` when not set.
    """

    client: PositiveDuration = 30.0
    http_request: PositiveDuration = 10.0
    # Declared after `http_request`, its default.
    http_keep_alive: PositiveDuration = Field(default=None, validate_default=True)

    @field_validator("http_keep_alive", mode="before")
    @classmethod
    def _default_to_http_request(cls, value: object, info: ValidationInfo) -> object:
        return info.data.get("http_request", 10.0) if value is None else value


class BackendTimeouts(_Frozen):
    """Server-side timeouts in seconds (HAProxy `timeout connect`, `timeout server`)."""

    connect: PositiveDuration = 2.0
    server: PositiveDuration = 30.0


class HttpLimits(_Frozen):
    """Bounds on a request: beyond them the client gets 431 or 414 (head) or 413 (body).

    `max_request_body` 0 means no limit (HAProxy has none; nginx `client_max_body_size`).
    """

    max_header_bytes: PositiveSize = 32768
    max_headers: HeaderCount = 100
    max_request_line: PositiveSize = 8192
    max_request_body: BodySize = 0


class PassiveConfig(_Frozen):
    """Passive health and outlier ejection: failures seen on real traffic take a server out.

    `max_fails` consecutive connect failures, resets or timeouts (nginx
    max_fails, HAProxy observe layer4), or `consecutive_5xx` responses in a row
    (Envoy outlier detection; 0 = off), eject a server for `fail_timeout`,
    doubled for each repeated ejection up to `max_ejection_time`. At most
    `max_ejected_percent` of a backend's servers are ejected at once.
    """

    max_fails: MaxFails = 3
    fail_timeout: PositiveDuration = 10.0
    consecutive_5xx: Consecutive5xx = 0
    # Declared after `fail_timeout`, which its default and its rule depend on.
    max_ejection_time: PositiveDuration = Field(default=None, validate_default=True)
    max_ejected_percent: Percent = 50

    @field_validator("max_ejection_time", mode="before")
    @classmethod
    def _default_max_ejection_time(cls, value: object, info: ValidationInfo) -> object:
        # Never below fail_timeout, so that a long fail_timeout written before this
        # setting existed keeps working as it did.
        if value is None:
            return max(DEFAULT_MAX_EJECTION_TIME, info.data.get("fail_timeout", 0.0))
        return value

    @field_validator("max_ejection_time")
    @classmethod
    def _not_below_fail_timeout(cls, seconds: float, info: ValidationInfo) -> float:
        fail_timeout = info.data.get("fail_timeout")
        if fail_timeout is not None and seconds < fail_timeout:
            raise config_error(
                f"{format_duration(seconds)} is shorter than fail_timeout "
                f"{format_duration(fail_timeout)}",
                f"the first ejection already lasts fail_timeout; use at least "
                f"{format_duration(fail_timeout)}",
            )
        return seconds


class HttpCheckConfig(_Frozen):
    """The request an http check sends and the answer that counts as healthy.

    HAProxy `option httpchk` and `http-check expect`. At most `max_body` bytes of
    the body are read; a check whose expectation needs more fails.
    """

    method: HttpMethod = "GET"
    path: HttpCheckPath = Field(default=None, validate_default=True)
    host: HttpHost | None = None
    expect_status: StatusRanges = ((200, 399),)
    # Declared after `method`: a HEAD answer has no body to look into.
    expect_body: BodyText | None = None
    expect_body_regex: BodyRegex | None = None
    max_body: CheckBodySize = 65536

    @field_validator("expect_body", "expect_body_regex")
    @classmethod
    def _needs_a_body(cls, expected: str | None, info: ValidationInfo) -> str | None:
        if expected is not None and info.data.get("method") == "HEAD":
            raise config_error(
                f"the answer to HEAD has no body, so {info.field_name} can never match",
                f"use method: GET, or remove {info.field_name}",
            )
        return expected

    def accepts_status(self, status: int) -> bool:
        """Is `status` one of `expect_status`?"""
        return any(low <= status <= high for low, high in self.expect_status)

    @property
    def expected_status_text(self) -> str:
        """ "200-399" or "200, 204": for check results such as "status 500 (expected 200-399)"."""
        return format_status_ranges(self.expect_status)

    def __str__(self) -> str:
        return f"{self.method} {self.path} expecting {self.expected_status_text}"


def format_status_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """((200, 399), (404, 404)) -> "200-399, 404"."""
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


class CommandCheckConfig(_Frozen):
    """A program whose exit status is the verdict: 0 = healthy (HAProxy external-check).

    The runner passes the server in the environment (BASCULE_SERVER_ADDRESS,
    BASCULE_SERVER_PORT, BASCULE_SERVER_NAME, BASCULE_BACKEND, and HAProxy's
    HAPROXY_SERVER_ADDR, HAPROXY_SERVER_PORT, HAPROXY_SERVER_NAME,
    HAPROXY_PROXY_NAME) and kills the program at the check's timeout.
    """

    path: CommandPath = Field(default=None, validate_default=True)
    args: tuple[CommandArgument, ...] = ()

    def __str__(self) -> str:
        return shlex.join((self.path, *self.args))


class AgentCheckConfig(_Frozen):
    """HAProxy agent-check: the server's agent answers "up", "drain", "75%", ... on a side port."""

    port: AgentPort = Field(default=None, validate_default=True)
    # Sent once connected (HAProxy agent-send); empty sends nothing.
    send: Text = ""

    def __str__(self) -> str:
        return f"port {self.port}"


# How each check type is written in its error messages and hints.
_CHECK_BLOCKS: dict[str, tuple[str, str]] = {
    "http": ("an http", "http: {path: /health}"),
    "command": ("a command", "command: {path: /usr/local/bin/check-web}"),
    "agent": ("an agent", "agent: {port: 9999}"),
}


class CheckConfig(_Frozen):
    """An active health check (HAProxy `check inter fastinter downinter rise fall`).

    `type` "none" means no active check. Durations are seconds. `fast_interval`
    and `down_interval` default to `interval`; `timeout` to the shorter of
    `interval` and 2s. `jitter` is a fraction (0.1 = each delay varies by +-10%).
    Exactly the sub-block of `type` is set: `http` for http, and so on.
    """

    type: CheckType = "none"
    interval: PositiveDuration = DEFAULT_CHECK_INTERVAL
    fast_interval: PositiveDuration = Field(default=None, validate_default=True)
    down_interval: PositiveDuration = Field(default=None, validate_default=True)
    timeout: PositiveDuration = Field(default=None, validate_default=True)
    rise: Rise = 2
    fall: Fall = 3
    jitter: Jitter = 0.0
    port: Port | None = None
    http: HttpCheckConfig | None = Field(default=None, validate_default=True)
    command: CommandCheckConfig | None = Field(default=None, validate_default=True)
    agent: AgentCheckConfig | None = Field(default=None, validate_default=True)

    @field_validator("fast_interval", "down_interval", mode="before")
    @classmethod
    def _default_to_interval(cls, value: object, info: ValidationInfo) -> object:
        return info.data.get("interval", DEFAULT_CHECK_INTERVAL) if value is None else value

    @field_validator("timeout", mode="before")
    @classmethod
    def _default_timeout(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            interval = info.data.get("interval", DEFAULT_CHECK_INTERVAL)
            return min(interval, MAX_DEFAULT_CHECK_TIMEOUT)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, timeout: float, info: ValidationInfo) -> float:
        return timeout_within_interval(
            timeout, info.data.get("interval"), "use a timeout shorter than the interval"
        )

    @field_validator("port")
    @classmethod
    def _port_is_not_the_agents(cls, port: int | None, info: ValidationInfo) -> int | None:
        if port is not None and info.data.get("type") == "agent":
            raise config_error("an agent check connects to agent.port, not to port", "remove port")
        return port

    @field_validator("http", "command", "agent")
    @classmethod
    def _block_matches_type(cls, block: BaseModel | None, info: ValidationInfo) -> BaseModel | None:
        kind = info.data.get("type")
        name = str(info.field_name)
        article, example = _CHECK_BLOCKS[name]
        if block is not None and kind is not None and kind != name:
            raise config_error(
                f"{article}: block only applies to type {name}, and this check is type {kind}",
                f"set type: {name}, or remove {name}:",
            )
        if block is None and kind == name:
            raise config_error(
                f"type {name} needs {article}: block", f"add {example}", line_of="type"
            )
        return block

    @property
    def enabled(self) -> bool:
        """Is there an active check to run?"""
        return self.type != "none"

    def target_port(self, server_port: int) -> int:
        """The port the check connects to, for a server listening on `server_port`."""
        if self.agent is not None:
            return self.agent.port
        return server_port if self.port is None else self.port


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
    # Clients whose forwarding headers are believed (mode http; PROXY protocol later).
    trusted_networks: tuple[TrustedNetwork, ...] = ()
    forwarded: ForwardedMode = "append"

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
    """One server of a backend (HAProxy `server` line).

    `check` is the server's effective health check. In a file, a server's
    `check:` is a partial override of its backend's; the loader merges them.
    In code, a server built without `check` takes its backend's.
    """

    name: Name
    address: ServerAddress
    port: Port
    weight: Weight = 1
    backup: Boolean = False
    max_connections: MaxConnections = 0
    initial_state: InitialState = "up"
    check: CheckConfig = Field(default_factory=CheckConfig)


class MinHealthy(_Frozen):
    """Below this many servers UP a backend is degraded: a count, or a share of its servers."""

    count: int | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _count_or_percent(self) -> MinHealthy:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give either count or percent")
        return self

    def threshold(self, total_servers: int) -> int:
        """How many servers must be UP out of `total_servers`; a share is rounded up."""
        if self.percent is None:
            return self.count or 0
        # Multiply first: 10 * 30 / 100 is exactly 3, 10 * (30 / 100) is not.
        return math.ceil(total_servers * self.percent / 100)

    def __str__(self) -> str:
        return str(self.count) if self.percent is None else format_percent(self.percent)


MinHealthySetting = Annotated[MinHealthy, BeforeValidator(min_healthy_fields)]


class BackendConfig(_Frozen):
    """A pool of servers and how traffic is spread over them.

    `check` is the backend's own health check; each server carries its
    effective one. `slow_start` ramps a server's weight up over that many
    seconds after it comes UP; `on_down` says what happens to the connections
    of a server marked DOWN.
    """

    name: Name
    algorithm: AlgorithmName = "round_robin"
    # Declared after `algorithm` so that its validator can see the algorithm.
    hash_key: HashKeyConfig | None = Field(default=None, validate_default=True)
    retries: Retries = 3
    timeouts: BackendTimeouts = Field(default_factory=BackendTimeouts)
    passive: PassiveConfig = Field(default_factory=PassiveConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)
    slow_start: Duration = 0.0
    on_down: OnDown = "none"
    # `servers` comes after `check`, which its servers inherit, and before
    # `min_healthy`, which must not ask for more servers than there are.
    servers: tuple[ServerConfig, ...] = Field(min_length=1)
    min_healthy: MinHealthySetting = Field(default_factory=lambda: MinHealthy(count=0))

    @field_validator("servers")
    @classmethod
    def _servers_inherit_check(
        cls, servers: tuple[ServerConfig, ...], info: ValidationInfo
    ) -> tuple[ServerConfig, ...]:
        check = info.data.get("check")
        if check is None:
            return servers  # the backend's check is invalid and reported
        return tuple(
            server
            if "check" in server.model_fields_set
            else server.model_copy(update={"check": check})
            for server in servers
        )

    @field_validator("min_healthy")
    @classmethod
    def _min_healthy_is_reachable(cls, minimum: MinHealthy, info: ValidationInfo) -> MinHealthy:
        servers = info.data.get("servers")
        if servers is not None and minimum.count is not None and minimum.count > len(servers):
            total = len(servers)
            raise config_error(
                f"{minimum.count} is more than the {total} server{'' if total == 1 else 's'} "
                "of this backend, which would always be degraded",
                f'use at most {total}, or a share such as "50%"',
            )
        return minimum

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


class _WrittenAt:
    """Where each node of the file was written: kept beside a `Config`, not part of it.

    Two configurations that differ only in layout are equal, so this compares
    equal to any other `_WrittenAt`.
    """

    def __init__(self, lines: LineMap | None = None) -> None:
        self.lines = lines

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _WrittenAt)

    def __hash__(self) -> int:
        return 0


def _empty_vrrp(value: object) -> object:
    # `vrrp:` with every line under it commented out: no VRRP, like no section at all.
    return {} if value is None else value


class Config(_Frozen):
    """The whole configuration, as loaded from `source`."""

    model_config = ConfigDict(populate_by_name=True)

    global_: GlobalConfig = Field(default_factory=GlobalConfig, validation_alias="global")
    frontends: tuple[FrontendConfig, ...] = Field(min_length=1)
    backends: tuple[BackendConfig, ...] = Field(min_length=1)
    vrrp: Annotated[VrrpConfig, BeforeValidator(_empty_vrrp)] = Field(default_factory=VrrpConfig)
    source: str = "<config>"
    _written_at: _WrittenAt = PrivateAttr(default_factory=_WrittenAt)

    def remember_lines(self, lines: LineMap) -> None:
        """Keep the line of every node (the loader calls this), for `line_of`."""
        self._written_at = _WrittenAt(lines)

    def line_of(self, path: Path) -> int | None:
        """The line of `source` where the node at `path` was written, such as
        ("vrrp", "instances", 0, "interface"); None for a config built in code."""
        lines = self._written_at.lines
        return None if lines is None else lines.line_of(path)

    def backend(self, name: str) -> BackendConfig:
        """The backend called `name`; KeyError if there is none."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(f"no backend named {name!r} in {self.source}")

    def frontends_using(self, backend: str) -> tuple[FrontendConfig, ...]:
        """The frontends that send traffic to `backend`: as default_backend or by a route."""
        return tuple(
            frontend
            for frontend in self.frontends
            if frontend.default_backend == backend
            or any(route.backend == backend for route in frontend.routes)
        )

    def summary(self) -> str:
        """One line such as "2 frontends, 3 backends, 7 servers" (", 1 vrrp instance")."""
        servers = sum(len(backend.servers) for backend in self.backends)
        counts = [
            (len(self.frontends), "frontend"),
            (len(self.backends), "backend"),
            (servers, "server"),
        ]
        if self.vrrp.instances:
            counts.append((len(self.vrrp.instances), "vrrp instance"))
        return ", ".join(_count(n, noun) for n, noun in counts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class _DefaultTimeouts(_Frozen):
    connect: PositiveDuration | None = None
    server: PositiveDuration | None = None
    client: PositiveDuration | None = None
    http_request: PositiveDuration | None = None
    http_keep_alive: PositiveDuration | None = None


class _DefaultPassive(_Frozen):
    max_fails: MaxFails | None = None
    fail_timeout: PositiveDuration | None = None
    consecutive_5xx: Consecutive5xx | None = None
    max_ejection_time: PositiveDuration | None = None
    max_ejected_percent: Percent | None = None


# The `check:` of `defaults:` is partial: each key is checked on its own here,
# and the rules that relate keys (timeout within interval, a sub-block that
# matches the type) apply once it is merged into a backend.
class _DefaultHttpCheck(_Frozen):
    method: HttpMethod | None = None
    path: HttpCheckPath | None = None
    host: HttpHost | None = None
    expect_status: StatusRanges | None = None
    expect_body: BodyText | None = None
    expect_body_regex: BodyRegex | None = None
    max_body: CheckBodySize | None = None


class _DefaultCommandCheck(_Frozen):
    path: CommandPath | None = None
    args: tuple[CommandArgument, ...] | None = None


class _DefaultAgentCheck(_Frozen):
    port: AgentPort | None = None
    send: Text | None = None


class _DefaultCheck(_Frozen):
    type: CheckType | None = None
    interval: PositiveDuration | None = None
    fast_interval: PositiveDuration | None = None
    down_interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    rise: Rise | None = None
    fall: Fall | None = None
    jitter: Jitter | None = None
    port: Port | None = None
    http: _DefaultHttpCheck | None = None
    command: _DefaultCommandCheck | None = None
    agent: _DefaultAgentCheck | None = None


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
    check: _DefaultCheck = Field(default_factory=_DefaultCheck)
    slow_start: Duration | None = None
    on_down: OnDown | None = None
    min_healthy: MinHealthySetting | None = None
    server: _DefaultServer = Field(default_factory=_DefaultServer)
    max_connections: MaxConnections | None = None
    trusted_networks: tuple[TrustedNetwork, ...] | None = None
    forwarded: ForwardedMode | None = None
