"""Shared pytest configuration: async tests run on uvloop, like the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import uvloop

from backends import LIVE
from bascule.proxy.build import stale_modules

# A missing prerequisite (root, keepalived, the desync corpus...): skipped here, failed in CI.
pytest_plugins = ["prerequisites"]


def pytest_configure(config: Any) -> None:
    stale = stale_modules()
    if stale:
        pytest.exit(
            f"the compiled L7 data path is older than the source of {', '.join(stale)}: "
            "the tests would run the old code. Rebuild it with `make build` (or delete "
            "src/bascule/*/*.so and src/*__mypyc*.so to test the Python code).",
            returncode=4,
        )


def pytest_asyncio_loop_factories(config: Any, item: Any) -> Mapping[str, Callable[[], Any]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
async def _stop_backends() -> AsyncIterator[None]:
    """Stop every test backend after each test: an open uvloop server handle
    left behind makes the loop's close() hang."""
    yield
    while LIVE:
        await LIVE.pop().stop()
