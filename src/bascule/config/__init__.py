"""Bascule's configuration: YAML in, a validated, frozen, typed model out.

`load_config(path)` is the entry point; it raises `bascule.errors.ConfigError`
carrying every problem, each located as `file:line: path.to.field`. The
models carry concrete values with `defaults:` already merged in. `diff(old,
new)` describes what a reload changes. `vrrp_environment_problems(config,
interfaces)` checks the `vrrp:` section against the host's interfaces, which
loading does not look at.
"""

from bascule.balance.names import ALGORITHM_NAMES
from bascule.config.diff import diff
from bascule.config.environment import InterfaceAddresses, vrrp_environment_problems
from bascule.config.loader import load_config, load_config_text
from bascule.config.models import (
    AgentCheckConfig,
    BackendConfig,
    BackendTimeouts,
    BindAddress,
    CheckConfig,
    CommandCheckConfig,
    Config,
    FrontendConfig,
    FrontendTimeouts,
    GlobalConfig,
    HashKeyConfig,
    HttpCheckConfig,
    HttpLimits,
    MinHealthy,
    PassiveConfig,
    RouteConfig,
    ServerConfig,
)
from bascule.config.units import (
    format_duration,
    format_percent,
    format_size,
    parse_duration,
    parse_percent,
    parse_size,
)
from bascule.config.vrrp import (
    GarpConfig,
    NotifyConfig,
    TrackConfig,
    VrrpConfig,
    VrrpInstance,
)

__all__ = [
    "ALGORITHM_NAMES",
    "AgentCheckConfig",
    "BackendConfig",
    "BackendTimeouts",
    "BindAddress",
    "CheckConfig",
    "CommandCheckConfig",
    "Config",
    "FrontendConfig",
    "FrontendTimeouts",
    "GarpConfig",
    "GlobalConfig",
    "HashKeyConfig",
    "HttpCheckConfig",
    "HttpLimits",
    "InterfaceAddresses",
    "MinHealthy",
    "NotifyConfig",
    "PassiveConfig",
    "RouteConfig",
    "ServerConfig",
    "TrackConfig",
    "VrrpConfig",
    "VrrpInstance",
    "diff",
    "format_duration",
    "format_percent",
    "format_size",
    "load_config",
    "load_config_text",
    "parse_duration",
    "parse_percent",
    "parse_size",
    "vrrp_environment_problems",
]
