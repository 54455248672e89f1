"""Build Bascule, compiling the L7 data path with mypyc where a C compiler is available.

The modules in COMPILED are ordinary typed Python (mypy --strict checks them like the
rest). mypyc, which comes with mypy, turns them into one C extension: the per-request
path of the HTTP proxy (and the balancers it calls) then runs about 60% fewer
instructions (bench/proxy_path.py, in 2026-11: 26k per request against 68k as Python). The rest of
Bascule runs at most a few times per second and stays Python.

Without a C compiler or the Python headers (Debian: `apt-get install gcc python3-dev`),
or with BASCULE_PURE_PYTHON=1, nothing is compiled and the same modules run as Python:
same behaviour, more CPU per request. `bascule run` logs which one it uses.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The list lives in src/bascule/proxy/build.py, which also checks it at run time; it is
# read by path because the package is not importable while it is being built.
_BUILD = runpy.run_path(str(Path(__file__).parent / "src" / "bascule" / "proxy" / "build.py"))
COMPILED = [f"src/bascule/{name}.py" for name in _BUILD["COMPILED_MODULES"]]


def pure_python(reason: str) -> list[Any]:
    print(f"bascule: not compiling the data path ({reason}); it runs as Python", file=sys.stderr)
    return []


def extensions() -> list[Any]:
    if os.environ.get("BASCULE_PURE_PYTHON") == "1":
        return pure_python("BASCULE_PURE_PYTHON=1")
    try:
        from mypyc.build import mypycify
    except ImportError:
        return pure_python("mypyc is not installed")
    try:
        return list(mypycify(COMPILED, opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        return pure_python(f"mypyc failed: {exc}")


class OptionalBuildExt(build_ext):
    """A failed C build leaves the Python modules in place instead of failing the install.

    mypyc puts the code of every module in one shared library and gives each module a stub
    that imports it, so a partial build would break imports: on any failure, every
    compiled file built so far is removed and all the modules run as Python.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            pure_python(f"C build failed: {exc}")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
