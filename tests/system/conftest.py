"""System tests: real network namespaces, as root. Skipped, with the reason, elsewhere.

Every test in this directory is marked `system` (select or deselect with `-m system`)
and skipped as a whole (failed in CI: `prerequisites`) when the machine cannot run it:
not root, no `ip` command, or namespaces cannot be created (checked once, by creating
and deleting one). Namespaces left by crashed runs are removed once per session before
the first test.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bascule.netns import CommandError, Topology, remove_stale_namespaces, topology
from prerequisites import needs

HERE = Path(__file__).parent


@functools.cache
def why_not_runnable() -> str | None:
    """The reason system tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "system tests need root: they create network namespaces (run with sudo)"
    if shutil.which("ip") is None:
        return "system tests need the `ip` command from iproute2"
    probe = Topology()
    try:
        probe.namespace("probe")
    except CommandError as exc:
        return f"cannot create network namespaces here: {exc}"
    finally:
        probe.close()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in item.path.parents]
    if not ours:
        return
    reason = why_not_runnable()
    for item in ours:
        item.add_marker(pytest.mark.system)
        item.add_marker(needs(reason is None, reason or ""))


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_namespaces() -> None:
    remove_stale_namespaces()


@pytest.fixture
def topo() -> Iterator[Topology]:
    """A fresh topology, torn down after the test whatever its outcome."""
    with topology() as t:
        yield t
