"""The value types of the configuration and the validators that give them plain-English errors.

Each type is an `Annotated` alias that a model field uses. The validators run
*before* pydantic's own checks so that every rejection carries our message and
a hint (pydantic's "Input should be a valid integer" never reaches a user).
They raise `PydanticCustomError("bascule", ...)`; `messages.py` reads the
message and hint back from the error context.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, TypeGuard

from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

from bascule.balance.names import ALGORITHM_NAMES, ALGORITHM_SYNONYMS
from bascule.config.addresses import (
    IPAddress,
    IPInterface,
    check_interface_name,
    check_route_host,
    check_server_address,
    parse_host_address,
    parse_trusted_network,
    parse_virtual_address,
)
from bascule.config.findings import InvalidValueError, show
from bascule.config.units import (
    format_duration,
    format_size,
    parse_duration,
    parse_percent,
    parse_size,
)

CHECK_TYPES: tuple[str, ...] = ("none", "tcp", "http", "command", "agent")

# HAProxy spells each check by the directive that enables it.
_CHECK_TYPE_SYNONYMS: Mapping[str, str] = {
    "connect": "tcp",
    "tcp-check": "tcp",
    "httpchk": "http",
    "http-check": "http",
    "external-check": "command",
    "external": "command",
    "agent-check": "agent",
}

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ERROR_TYPE = "bascule"


def timeout_within_interval(timeout: float, interval: float | None, hint: str) -> float:
    """A check or track-script timeout may not outlast the interval it runs in."""
    if interval is not None and timeout > interval:
        raise config_error(
            f"{format_duration(timeout)} is longer than interval {format_duration(interval)}",
            hint,
        )
    return timeout


def config_error(
    message: str, hint: str, line_of: str | None = None, item: int | None = None
) -> PydanticCustomError:
    """A validation error that `messages.py` shows as `message (hint)`.

    `line_of` names a sibling key whose line is more useful than the field's own;
    `item` is the index of the list item at fault, for a rule about a whole list
    (the error is then located at that item, line included).
    """
    context: dict[str, str | int] = {"message": message, "hint": hint}
    if line_of is not None:
        context["line_of"] = line_of
    if item is not None:
        context["item"] = item
    return PydanticCustomError(ERROR_TYPE, "{message}", context)


def _reraise(parse: Callable[[object], object]) -> Callable[[object], object]:
    def validator(value: object) -> object:
        try:
            return parse(value)
        except InvalidValueError as problem:
            raise config_error(problem.message, problem.hint) from None

    return validator


def _whole_number(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise config_error(f"{show(value)} is not a whole number", "write digits only, e.g. 3")


def _in_range(low: int, high: int, hint: str) -> AfterValidator:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise config_error(f"{value} is out of range {low}-{high}", hint)
        return value

    return AfterValidator(check)


def _at_least(low: int, hint: str) -> AfterValidator:
    def check(value: int) -> int:
        if value < low:
            what = "negative" if low == 0 else f"below the minimum of {low}"
            raise config_error(f"{value} is {what}", hint)
        return value

    return AfterValidator(check)


def _positive_duration(seconds: float) -> float:
    if seconds == 0:
        raise config_error("must be longer than 0", "use a duration such as 500ms or 10s")
    return seconds


def _boolean(value: object) -> object:
    if isinstance(value, bool):
        return value
    raise config_error(f"{show(value)} is not true or false", "write true or false")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise config_error(f"{show(value)} is a number, not text", f'quote it: "{value}"')
    raise config_error(f"{show(value)} is not text", 'write a single value, e.g. "web"')


def _name(value: object) -> object:
    text = _text(value)
    if not _NAME.match(text):
        raise config_error(
            f"{show(text)} is not a valid name",
            "use letters, digits, '-', '_' and '.' only, e.g. web-1",
        )
    return text


def one_of(options: tuple[str, ...], synonyms: Mapping[str, str] | None = None) -> BeforeValidator:
    """Accept one of `options` (case-insensitive), suggesting the closest on a typo."""

    def check(value: object) -> object:
        text = _text(value).strip().lower()
        if text in options:
            return text
        listing = ", ".join(options)
        raise config_error(
            f"{show(value)} is not one of {listing}", _suggest(text, options, synonyms)
        )

    return BeforeValidator(check)


def _suggest(text: str, options: tuple[str, ...], synonyms: Mapping[str, str] | None) -> str:
    if synonyms and text in synonyms:
        return f'"{text}" is called "{synonyms[text]}" here'
    close = difflib.get_close_matches(text, options, n=1)
    return f'did you mean "{close[0]}"?' if close else "pick one of the values listed"


def _path_prefix(value: object) -> object:
    text = _text(value)
    if not text.startswith("/"):
        raise config_error(f"{show(text)} does not start with /", f'write "/{text.lstrip("/")}"')
    if any(char.isspace() or char in "?#" for char in text):
        raise config_error(f"{show(text)} is not a plain path", "remove spaces, '?' and '#'")
    return text


def _http_token(value: object) -> object:
    text = _text(value)
    if not _HTTP_TOKEN.match(text):
        raise config_error(f"{show(text)} is not a valid header or cookie name", "e.g. X-User-Id")
    return text


# --- health checks ------------------------------------------------------------------------

HTTP_CHECK_METHODS: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")
STATUS_FORMS = 'a code such as 200, a range such as "200-399", or a class such as "2xx"'
# Jitter randomises each delay by up to +-50%: beyond that a check could fire at once.
MAX_JITTER = 0.5
# A health answer is a few bytes; reading more only costs memory (and an endless
# body must never be read whole).
MAX_CHECK_BODY = 1024**2

_STATUS_RANGE = re.compile(r"^([0-9]{3})\s*-\s*([0-9]{3})$")
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_HOST_HEADER = re.compile(r"^[A-Za-z0-9._~\-\[\]:]+$")


def _jitter(value: object) -> float:
    """A fraction from 0 to 0.5, written "10%" or as the fraction itself (0.1)."""
    hint = 'use a percentage between 0% and 50%, e.g. "10%", or a fraction such as 0.1'
    if isinstance(value, str):
        try:
            fraction = parse_percent(value) / 100
        except InvalidValueError as problem:
            raise config_error(problem.message, hint) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fraction = float(value)
    else:
        raise config_error(f"{show(value)} is not a percentage", hint)
    if not 0 <= fraction <= MAX_JITTER:  # also catches NaN
        raise config_error(f"{show(value)} is outside 0%-50%", hint)
    return fraction


def _whole_percent(value: object) -> object:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = parse_percent(value)
        except InvalidValueError as problem:
            raise config_error(problem.message, 'write e.g. 50 or "50%"') from None
        if not number.is_integer():
            raise config_error(f"{show(value)} is not a whole percentage", 'write e.g. "50%"')
        return int(number)
    return _whole_number(value)


def _http_method(value: object) -> object:
    text = _text(value).strip().upper()
    if text in HTTP_CHECK_METHODS:
        return text
    raise config_error(
        f"{show(value)} is not one of {', '.join(HTTP_CHECK_METHODS)}",
        "a health check only reads: use GET, or HEAD when the status is enough",
    )


def _http_check_path(value: object) -> object:
    # None is the default: reaching here means the http block has no path.
    if value is None:
        raise config_error(
            "an http check needs a path", "add path: /health, the URL the check requests"
        )
    text = _text(value)
    if not text.startswith("/"):
        raise config_error(f"{show(text)} does not start with /", f'write "/{text.lstrip("/")}"')
    # The path goes into the request line as is: a space or CR/LF would break it.
    if not all(char.isascii() and char.isprintable() and char not in " #" for char in text):
        raise config_error(
            f"{show(text)} is not a plain path",
            "remove spaces and '#', and percent-encode other characters; a ?query is fine",
        )
    return text


def _http_host(value: object) -> object:
    text = _text(value).strip()
    if not _HOST_HEADER.match(text):
        raise config_error(
            f"{show(value)} is not a host", 'write a host name such as "app.example.com"'
        )
    return text


def _status_ranges(value: object) -> tuple[tuple[int, int], ...]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise config_error("lists no status", f"write at least one: {STATUS_FORMS}")
    return tuple(_status_range(item) for item in items)


def _status_range(item: object) -> tuple[int, int]:
    low, high = _status_bounds(item)
    for code in (low, high):
        if not 100 <= code <= 599:
            raise config_error(f"{code} is not an HTTP status", "use codes between 100 and 599")
    if low > high:
        raise config_error(
            f'"{low}-{high}" is a reversed range', f'write the lower code first: "{high}-{low}"'
        )
    return low, high


def _status_bounds(item: object) -> tuple[int, int]:
    # A (low, high) tuple is how a range is written in code; YAML never makes tuples.
    if isinstance(item, tuple) and len(item) == 2 and all(_is_int(code) for code in item):
        return item[0], item[1]
    if isinstance(item, int) and not isinstance(item, bool):
        return item, item
    if isinstance(item, str):
        text = item.strip()
        if re.fullmatch(r"[0-9]+", text):
            return int(text), int(text)
        if match := _STATUS_RANGE.match(text):
            return int(match[1]), int(match[2])
        if match := _STATUS_CLASS.match(text):
            return int(match[1]) * 100, int(match[1]) * 100 + 99
    raise config_error(f"{show(item)} is not a status", f"write {STATUS_FORMS}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _body_text(value: object) -> object:
    text = _text(value)
    if not text:
        raise config_error("is empty", "write the text a healthy answer contains, or remove it")
    return text


def _body_regex(value: object) -> object:
    text = _text(value)
    if not text:
        raise config_error("is empty", "write the pattern a healthy answer matches, or remove it")
    try:
        re.compile(text)
    except (re.error, OverflowError, RecursionError) as error:
        raise config_error(
            f"{show(text)} is not a valid regular expression: {error}",
            "fix the pattern; for plain text use expect_body",
        ) from None
    return text


def min_healthy_fields(value: object) -> object:
    """`2` -> {"count": 2}, `"50%"` -> {"percent": 50.0}; a model instance passes as is."""
    hint = 'write a number of servers such as 2, or a share of them such as "50%"'
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = parse_percent(value)
        except InvalidValueError as problem:
            raise config_error(problem.message, hint) from None
        if percent > 100:
            raise config_error(f"{show(value)} is more than 100%", hint)
        return {"percent": percent}
    count = _count_of_servers(value)
    if count is None:
        raise config_error(f"{show(value)} is not a count or a percentage", hint)
    if count < 0:
        raise config_error(f"{count} is negative", hint)
    return {"count": count}


def _count_of_servers(value: object) -> int | None:
    if _is_int(value):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return None


def _size_at_most(limit: int, hint: str) -> AfterValidator:
    def check(size: int) -> int:
        if size > limit:
            raise config_error(f"{format_size(size)} is more than {format_size(limit)}", hint)
        return size

    return AfterValidator(check)


def _command_path(value: object) -> object:
    if value is None:
        raise config_error(
            "a command check needs the program to run", "add path: /usr/local/bin/check-web"
        )
    return _program_path(value, "/usr/local/bin/check-web")


def _program_path(value: object, example: str) -> str:
    text = _text(value)
    # An absolute path: which program runs must not depend on the daemon's PATH or cwd.
    if not text.startswith("/"):
        raise config_error(
            f"{show(text)} is not an absolute path",
            f"write the full path, e.g. {example}; PATH is not searched",
        )
    if not text.isprintable():
        raise config_error(f"{show(text)} contains control characters", "remove them")
    return text


def _command_argument(value: object) -> object:
    if _is_int(value):
        return str(value)
    if isinstance(value, str) and "\0" not in value:
        return value
    raise config_error(
        f"{show(value)} is not a command-line argument",
        'write each argument as text, e.g. ["--port", "8080"]',
    )


def _agent_port(value: object) -> object:
    if value is None:
        raise config_error(
            "an agent check needs the port its agent listens on",
            "add port: 9999, like HAProxy agent-port",
        )
    return _whole_number(value)


@dataclass(frozen=True)
class ShownAs:
    """Field metadata telling `diff` how to print a value.

    "duration" (seconds as "2s"), "size" (bytes as "64k"), "fraction" (0.1 as
    "10%") or "status" (((200, 399),) as "200-399").
    """

    unit: Literal["duration", "size", "fraction", "status"]


Duration = Annotated[float, BeforeValidator(_reraise(parse_duration)), ShownAs("duration")]
PositiveDuration = Annotated[
    float,
    BeforeValidator(_reraise(parse_duration)),
    AfterValidator(_positive_duration),
    ShownAs("duration"),
]
PositiveSize = Annotated[
    int,
    BeforeValidator(_reraise(parse_size)),
    _at_least(1, "use a size such as 8k or 32k"),
    ShownAs("size"),
]
BodySize = Annotated[
    int,
    BeforeValidator(_reraise(parse_size)),
    _at_least(0, 'use 0 for no limit, or a size such as "100m"'),
    ShownAs("size"),
]
Port = Annotated[
    int, BeforeValidator(_whole_number), _in_range(1, 65535, "use a TCP port between 1 and 65535")
]
Weight = Annotated[
    int,
    BeforeValidator(_whole_number),
    _in_range(0, 256, "use a weight between 0 and 256; 0 takes no new traffic"),
]
MaxConnections = Annotated[
    int, BeforeValidator(_whole_number), _at_least(0, "use 0 for unlimited, or a positive limit")
]
Retries = Annotated[
    int, BeforeValidator(_whole_number), _at_least(0, "use 0 to never retry, or a positive count")
]
MaxFails = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(0, "use 0 to disable passive checks, or a positive count"),
]
HeaderCount = Annotated[
    int, BeforeValidator(_whole_number), _at_least(1, "use a positive count such as 100")
]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
Name = Annotated[str, BeforeValidator(_name)]
HttpToken = Annotated[str, BeforeValidator(_http_token)]
ServerAddress = Annotated[str, BeforeValidator(_reraise(check_server_address))]
RouteHost = Annotated[str, BeforeValidator(_reraise(check_route_host))]
PathPrefix = Annotated[str, BeforeValidator(_path_prefix)]
Mode = Annotated[Literal["tcp", "http"], one_of(("tcp", "http"))]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error"], one_of(("debug", "info", "warning", "error"))
]
InitialState = Annotated[
    Literal["up", "down", "drain", "maint", "check_first"],
    one_of(("up", "down", "drain", "maint", "check_first"), {"check-first": "check_first"}),
]
HashSource = Annotated[Literal["uri", "header", "cookie"], one_of(("uri", "header", "cookie"))]
AlgorithmName = Annotated[str, one_of(ALGORITHM_NAMES, ALGORITHM_SYNONYMS)]

CheckType = Annotated[
    Literal["none", "tcp", "http", "command", "agent"], one_of(CHECK_TYPES, _CHECK_TYPE_SYNONYMS)
]
Rise = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(1, "use 1 or more: the passing checks in a row that bring a server UP"),
]
Fall = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(1, "use 1 or more: the failed checks in a row that take a server DOWN"),
]
Jitter = Annotated[float, BeforeValidator(_jitter), ShownAs("fraction")]
Percent = Annotated[
    int, BeforeValidator(_whole_percent), _in_range(0, 100, "use a percentage between 0 and 100")
]
Consecutive5xx = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(0, "use 0 to ignore 5xx responses, or a count such as 5"),
]
HttpMethod = Annotated[Literal["GET", "HEAD", "OPTIONS"], BeforeValidator(_http_method)]
HttpCheckPath = Annotated[str, BeforeValidator(_http_check_path)]
HttpHost = Annotated[str, BeforeValidator(_http_host)]
StatusRanges = Annotated[
    tuple[tuple[int, int], ...], BeforeValidator(_status_ranges), ShownAs("status")
]
BodyText = Annotated[str, BeforeValidator(_body_text)]
BodyRegex = Annotated[str, BeforeValidator(_body_regex)]
CheckBodySize = Annotated[
    int,
    BeforeValidator(_reraise(parse_size)),
    _at_least(1, "use a size such as 64k"),
    _size_at_most(MAX_CHECK_BODY, "a health answer is short; use at most 1m, e.g. 64k"),
    ShownAs("size"),
]
CommandPath = Annotated[str, BeforeValidator(_command_path)]
CommandArgument = Annotated[str, BeforeValidator(_command_argument)]
AgentPort = Annotated[
    int,
    BeforeValidator(_agent_port),
    _in_range(1, 65535, "use the TCP port the agent listens on, between 1 and 65535"),
]
Text = Annotated[str, BeforeValidator(_text)]
TrustedNetwork = Annotated[str, BeforeValidator(_reraise(parse_trusted_network))]
ForwardedMode = Annotated[Literal["append", "replace"], one_of(("append", "replace"))]
OnDown = Annotated[
    Literal["none", "shutdown_sessions"],
    one_of(("none", "shutdown_sessions"), {"shutdown-sessions": "shutdown_sessions"}),
]


# --- VRRP -------------------------------------------------------------------------------------

V3_CHECKSUM_MODES: tuple[str, ...] = ("pseudo_header", "old_unicast", "as_v2")
# keepalived's option names, and the spellings of packet.V3Checksum.
_V3_CHECKSUM_SYNONYMS: Mapping[str, str] = {
    "pseudo-header": "pseudo_header",
    "old_unicast_checksum": "old_unicast",
    "multicast-pseudo-header": "old_unicast",
    "v3_checksum_as_v2": "as_v2",
    "no-pseudo-header": "as_v2",
}
TRACK_CONDITIONS: tuple[str, ...] = ("no_server_up", "degraded")
_TRACK_CONDITION_SYNONYMS: Mapping[str, str] = {
    "no-server-up": "no_server_up",
    "down": "no_server_up",
    "all_down": "no_server_up",
}
OWNER_PRIORITY = 255
MAX_TRACK_WEIGHT = 254


def _vrrp_version(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (2, 3):
        return int(value)
    if isinstance(value, str) and value.strip() in ("2", "3"):
        return int(value)
    raise config_error(
        f"{show(value)} is not 2 or 3",
        "use 3 for RFC 5798, or 2 for RFC 3768, keepalived's default, to pair with a "
        "keepalived that leaves vrrp_version out",
    )


def _vrrp_priority(priority: int) -> int:
    hint = (
        "use 1-254, where the highest becomes MASTER, or 255 on the node whose own "
        "address the virtual address is"
    )
    if priority == 0:
        raise config_error("0 is reserved: a MASTER sends priority 0 when it stops", hint)
    if not 1 <= priority <= OWNER_PRIORITY:
        raise config_error(f"{priority} is out of range 1-255", hint)
    return priority


def _track_weight(weight: int) -> int:
    if not -MAX_TRACK_WEIGHT <= weight <= MAX_TRACK_WEIGHT:
        raise config_error(
            f"{weight} is outside -254 to 254",
            "a negative weight lowers the priority while the tracked object fails, a positive "
            "one raises it while it works, and 0 means FAULT while it fails",
        )
    return weight


def _script_path(value: object) -> object:
    return _program_path(value, "/usr/local/bin/check-vip")


VirtualRouterId = Annotated[
    int,
    BeforeValidator(_whole_number),
    _in_range(
        1,
        255,
        "use 1-255: the same on every node of this virtual router, "
        "and a different one for each virtual router on the interface",
    ),
]
VrrpPriority = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_vrrp_priority)]
VrrpVersion = Annotated[Literal[2, 3], BeforeValidator(_vrrp_version)]
TrackWeight = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_track_weight)]
GarpCount = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(1, "use 1 or more gratuitous ARP messages per burst"),
]
ScriptRise = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(1, "use 1 or more: the successful runs in a row that make the script count as OK"),
]
ScriptFall = Annotated[
    int,
    BeforeValidator(_whole_number),
    _at_least(
        1, "use 1 or more: the failed runs in a row after which the script counts as failing"
    ),
]
InterfaceName = Annotated[str, BeforeValidator(_reraise(check_interface_name))]
VirtualAddress = Annotated[IPInterface, BeforeValidator(_reraise(parse_virtual_address))]
RouterAddress = Annotated[IPAddress, BeforeValidator(_reraise(parse_host_address))]
ScriptPath = Annotated[str, BeforeValidator(_script_path)]
V3ChecksumMode = Annotated[
    Literal["pseudo_header", "old_unicast", "as_v2"],
    one_of(V3_CHECKSUM_MODES, _V3_CHECKSUM_SYNONYMS),
]
TrackCondition = Annotated[
    Literal["no_server_up", "degraded"], one_of(TRACK_CONDITIONS, _TRACK_CONDITION_SYNONYMS)
]
