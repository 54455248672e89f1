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
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from bascule.config.addresses import check_route_host, check_server_address
from bascule.config.findings import InvalidValueError, show
from bascule.config.units import parse_duration, parse_size

ALGORITHM_NAMES: tuple[str, ...] = (
    "round_robin",
    "least_connections",
    "source",
    "ip_hash",
    "hash",
    "random",
    "first",
)

# What HAProxy and nginx users will type, and what we call it: a hint beats a bare "invalid".
_ALGORITHM_SYNONYMS: Mapping[str, str] = {
    "roundrobin": "round_robin",
    "static-rr": "round_robin",
    "leastconn": "least_connections",
    "least_conn": "least_connections",
    "uri": "hash",
    "url_param": "hash",
    "hdr": "hash",
    "rdp-cookie": "hash",
}

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ERROR_TYPE = "bascule"


def config_error(message: str, hint: str, line_of: str | None = None) -> PydanticCustomError:
    """A validation error that `messages.py` shows as `message (hint)`.

    `line_of` names a sibling key whose line is more useful than the field's own.
    """
    context: dict[str, str] = {"message": message, "hint": hint}
    if line_of is not None:
        context["line_of"] = line_of
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


@dataclass(frozen=True)
class ShownAs:
    """Field metadata telling `diff` how to print a value: "duration" or "size"."""

    unit: Literal["duration", "size"]


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
    Literal["up", "down", "drain", "maint"], one_of(("up", "down", "drain", "maint"))
]
HashSource = Annotated[Literal["uri", "header", "cookie"], one_of(("uri", "header", "cookie"))]
AlgorithmName = Annotated[str, one_of(ALGORITHM_NAMES, _ALGORITHM_SYNONYMS)]
