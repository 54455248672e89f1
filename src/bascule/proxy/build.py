"""Whether the L7 data path runs compiled (mypyc, see setup.py) or as Python.

An editable install builds the compiled modules next to their sources, and Python
imports a compiled module before its .py file. A source edited after the build would
then be silently ignored: `stale_modules` finds that case so that `bascule run` can warn
and the test suite can refuse to run the old code.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

# What setup.py compiles (it reads this list).
COMPILED_MODULES = ("http", "http_policy", "http_upstream", "pool", "runtime", "timers")
_HERE = Path(__file__).resolve().parent


def _compiled_file(name: str, here: Path = _HERE) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _built_at(compiled: Path, here: Path) -> float:
    """When a module was last compiled. mypyc puts the code of all the modules in one
    shared library beside the package (`<hash>__mypyc...so`); each module's own file is
    a small stub, rebuilt only when the stub's C changes."""
    shared = here.parent.parent.glob("*__mypyc*")
    return max([compiled.stat().st_mtime, *(lib.stat().st_mtime for lib in shared)])


def stale_modules(here: Path = _HERE) -> list[str]:
    """Compiled modules older than their source (rebuild: `make build`)."""
    stale = []
    for name in COMPILED_MODULES:
        compiled = _compiled_file(name, here)
        source = here / f"{name}.py"
        if compiled and source.exists() and source.stat().st_mtime > _built_at(compiled, here):
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
