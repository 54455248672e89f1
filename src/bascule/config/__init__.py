"""Bascule's configuration: YAML in, a validated, frozen, typed model out.

`load_config(path)` is the entry point; it raises `bascule.errors.ConfigError`
carrying every problem, each located as `file:line: path.to.field`. The
models carry concrete values with `defaults:` already merged in. `diff(old,
new)` describes what a reload changes.
"""

from bascule.config.diff import diff
from bascule.config.fieldtypes import ALGORITHM_NAMES
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
    "GlobalConfig",
    "HashKeyConfig",
    "HttpCheckConfig",
    "HttpLimits",
    "MinHealthy",
    "PassiveConfig",
    "RouteConfig",
    "ServerConfig",
    "diff",
    "format_duration",
    "format_percent",
    "format_size",
    "load_config",
    "load_config_text",
    "parse_duration",
    "parse_percent",
    "parse_size",
]
