"""Shared pytest configuration: async tests run on uvloop, like the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import uvloop

from backends import LIVE


def pytest_asyncio_loop_factories(config: Any, item: Any) -> Mapping[str, Callable[[], Any]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
async def _stop_backends() -> AsyncIterator[None]:
    """Stop every test backend after each test: an open uvloop server handle
    left behind makes the loop's close() hang."""
    yield
    while LIVE:
        await LIVE.pop().stop()
