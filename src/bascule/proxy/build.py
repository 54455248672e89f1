"""Whether the data path runs compiled (mypyc, see setup.py) or as Python.

An editable install builds the compiled modules next to their sources, and Python
imports a compiled module before its .py file. A source edited after the build would
then be silently ignored: `stale_modules` finds that case so that `bascule run` can warn
and the test suite can refuse to run the old code.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

# What setup.py compiles (it reads this list): the per-request path of the L7 proxy and
# the balancers it calls, as paths under src/bascule without ".py".
COMPILED_MODULES = (
    "proxy/heads",
    "proxy/http",
    "proxy/http_policy",
    "proxy/http_upstream",
    "proxy/pool",
    "proxy/runtime",
    "proxy/tcp",
    "proxy/timers",
    "balance/base",
    "balance/first",
    "balance/hashing",
    "balance/least_connections",
    "balance/random_p2c",
    "balance/registry",
    "balance/round_robin",
    "balance/tiers",
)
_ROOT = Path(__file__).resolve().parent.parent  # src/bascule


def _compiled_file(name: str, root: Path = _ROOT) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = root / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _built_at(compiled: Path, root: Path) -> float:
    """When a module was last compiled. mypyc puts the code of all the modules in one
    shared library beside the package (`<hash>__mypyc...so`); each module's own file is
    a small stub, rebuilt only when the stub's C changes."""
    shared = root.parent.glob("*__mypyc*")
    return max([compiled.stat().st_mtime, *(lib.stat().st_mtime for lib in shared)])


def stale_modules(root: Path = _ROOT) -> list[str]:
    """Compiled modules older than their source (rebuild: `make build`)."""
    stale = []
    for name in COMPILED_MODULES:
        compiled = _compiled_file(name, root)
        source = root / f"{name}.py"
        if compiled and source.exists() and source.stat().st_mtime > _built_at(compiled, root):
            stale.append(name)
    return stale


def data_path_description() -> str:
    """One line for the startup log."""
    compiled = [name for name in COMPILED_MODULES if _compiled_file(name)]
    if not compiled:
        return "L7 data path runs as Python (not compiled: see setup.py)"
    stale = stale_modules()
    if stale:
        return (
            f"L7 data path compiled, but {', '.join(stale)} changed since: the old code runs "
            "(rebuild with `make build`)"
        )
    return "L7 data path compiled with mypyc"
