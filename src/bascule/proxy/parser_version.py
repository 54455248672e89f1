"""Which httptools (llhttp) the L7 proxy may run on: the versions it was verified with.

The proxy leans on llhttp's strict parsing (see `proxy/heads.py` and http_policy's
docstring): heads are taken whole and split by hand *because* llhttp refused anything
but CRLF line ends, obs-fold, whitespace before ':' and the like. A different llhttp may
accept other bytes, and then the split and the policy no longer see what llhttp saw (a
request smuggling risk). So the range below is the one the differential tests
(tests/unit/test_heads.py, tests/unit/test_desync_corpus.py) passed with, and `bascule
run` refuses any other: httptools 0.6.1 and 0.6.2 accept a raw non-ASCII or an
empty request-target, which the later ones refuse.

pyproject.toml declares the same range (a unit test keeps the two equal). To support a
new httptools: run those tests with it installed, then widen both.
"""

from __future__ import annotations

import re
from typing import Final

from bascule.errors import StartupError

SUPPORTED_HTTPTOOLS: Final = ((0, 6, 3), (0, 10))
"""[lowest, first unsupported): the httptools versions the proxy was verified with."""

_RELEASE: Final = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def supported_requirement() -> str:
    """The requirement to install, as pip and pyproject.toml spell it."""
    low, high = SUPPORTED_HTTPTOOLS
    return f"httptools>={_dotted(low)},<{_dotted(high)}"


def _release(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a release version; None for anything else (a pre-release
    or a local build is not what the tests ran with)."""
    match = _RELEASE.fullmatch(version.strip())
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())


def check_httptools_version(installed: str | None = None) -> None:
    """Raise StartupError unless the httptools the proxy imports (or `installed`) is a
    supported version; the message names both and how to fix it."""
    if installed is None:
        import httptools

        installed = str(httptools.__version__)
    release = _release(installed)
    low, high = SUPPORTED_HTTPTOOLS
    if release is not None and low <= release < high:
        return
    raise StartupError(
        f"httptools {installed} is installed, but Bascule's HTTP parsing is verified only "
        f"with httptools {_dotted(low)} up to (not including) {_dotted(high)}: another "
        "llhttp may accept requests that Bascule's checks then read differently (see "
        "src/bascule/proxy/parser_version.py); install a supported version with "
        f"`pip install '{supported_requirement()}'`"
    )
