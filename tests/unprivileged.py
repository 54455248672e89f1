"""Bascule for a test that runs it as an unprivileged user (`nobody`).

The checkout and its venv may live where only their owner can read them (a clone in
/root, in `mktemp -d`, a home directory of mode 700): `nobody` could then not import
Bascule or its dependencies. `runtime_for_anyone()` copies Bascule's sources (and its
compiled data path, if built) and the installed files of its runtime dependencies into
a fresh directory that every user can read, and gives the interpreter and environment
that use that copy only.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
SETPRIV_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


@dataclass(frozen=True)
class Runtime:
    python: str  # the base interpreter, not the venv's (which may sit in the private checkout)
    env: dict[str, str]
    cwd: Path  # readable by anyone, unlike the checkout perhaps


def runtime_distributions(name: str = "bascule") -> list[metadata.Distribution]:
    """The installed distributions `name` needs to run (not its extras), recursively."""
    found: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [dist for key, dist in found.items() if key != name]


def _copy_installed_files(dist: metadata.Distribution, into: Path) -> None:
    for file in dist.files or []:
        if ".." in file.parts:  # scripts in bin/: not needed with `python -m`
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            target = into / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def _readable_by_all(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        extra = stat.S_IROTH | stat.S_IRGRP
        if path.is_dir():
            extra |= stat.S_IXOTH | stat.S_IXGRP
        path.chmod(path.stat().st_mode | extra)


@contextmanager
def runtime_for_anyone() -> Iterator[Runtime]:
    """A copy of Bascule and its dependencies any user can import; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="bascule-anyone-"))
    try:
        site = root / "site"
        for dist in runtime_distributions():
            _copy_installed_files(dist, site)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / "src", site, ignore=ignore, dirs_exist_ok=True)
        _readable_by_all(root)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": str(site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(root),
        }
        yield Runtime(python=sys._base_executable, env=env, cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
