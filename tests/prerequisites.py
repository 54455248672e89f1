"""A test whose prerequisite is missing: skipped on a developer's machine, failed in CI.

Locally, a test that needs root, keepalived or the shared desync corpus is skipped with
the reason (`-rs` prints it). In CI (CI=true, as CI services set it) `.ci/run` installs
every prerequisite, so a missing one is a broken set-up that must fail the run instead of
quietly testing less.

Two forms: `missing(reason)` inside a test, fixture or module being collected, and the
`@needs(available, reason)` marker. This module is a pytest plugin (tests/conftest.py
loads its hooks) that checks the markers before any fixture runs.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI_SETUP = "CI must have every prerequisite (.ci/run installs the packages): fix its set-up"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Skip with `reason` here; fail with it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: {CI_SETUP})", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """Mark a test that can run only when `available`; else `missing(reason)`."""
    return pytest.mark.prerequisite(available=available, reason=reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "prerequisite(available, reason): skipped locally, failed in CI if missing"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("prerequisite"):
        if not mark.kwargs["available"]:
            missing(mark.kwargs["reason"])
