"""A compiled data path older than its source is noticed (the old code would run)."""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

from bascule.proxy.build import stale_modules

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def touch(path: Path, mtime: float) -> None:
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))


def package(tmp_path: Path) -> Path:
    root = tmp_path / "src" / "bascule"
    (root / "proxy").mkdir(parents=True)
    (root / "balance").mkdir()
    return root


def test_a_source_edited_after_the_build_is_stale(tmp_path: Path) -> None:
    root = package(tmp_path)
    touch(root / "proxy" / f"http{SUFFIX}", 1000)
    touch(root / "proxy" / "http.py", 2000)
    touch(root / "proxy" / f"pool{SUFFIX}", 3000)
    touch(root / "proxy" / "pool.py", 2000)
    touch(root / "proxy" / "timers.py", 2000)  # not compiled at all: runs as Python
    touch(root / "balance" / f"tiers{SUFFIX}", 1000)
    touch(root / "balance" / "tiers.py", 2000)
    assert stale_modules(root) == ["proxy/http", "balance/tiers"]


def test_a_newer_shared_library_counts_as_the_build(tmp_path: Path) -> None:
    # mypyc rebuilds the library holding every module's code; a module's own stub file
    # keeps its old time when the stub did not change.
    root = package(tmp_path)
    touch(root / "proxy" / f"http{SUFFIX}", 1000)
    touch(root / "proxy" / "http.py", 2000)
    touch(tmp_path / "src" / f"0123abcd__mypyc{SUFFIX}", 3000)
    assert stale_modules(root) == []
