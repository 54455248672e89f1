"""Waiting on a condition instead of sleeping a fixed time.

A fixed sleep is either too long (a slow suite) or, on a loaded machine, too short (a
flaky one). `until` polls the condition and returns as soon as it holds; only when it
never does within the timeout does the test fail, saying what it waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# How long an awaited change may take before the test fails (a loaded 2-core machine).
DEADLINE = 3.0
POLL = 0.01


async def until(
    condition: Callable[[], object],
    timeout: float = DEADLINE,
    what: Callable[[], str] | str = "the condition",
) -> float:
    """Wait until `condition()` is true; the seconds it took. AssertionError naming
    `what` (a text, or a function giving one at the time of failure) after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            said = what() if callable(what) else what
            raise AssertionError(f"not within {timeout}s: {said}")
        await asyncio.sleep(POLL)
    return loop.time() - start
