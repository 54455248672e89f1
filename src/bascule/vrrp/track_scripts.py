"""VRRP track scripts: a program whose exit status moves the instance's priority.

keepalived's `vrrp_script` + `track_script`: the program runs every `interval`, is
killed at `timeout`, and counts with the same health counter as an active check
(`rise` passes in a row make it work again, `fall` failures in a row make it fail;
it starts as working, keepalived's default without `init_fail`). Only a change of
that verdict reaches the instance: `on_change(key, failing, reason)`.

The program runs without a shell, like a command check (`health.probes.run_program`),
with BASCULE_VRRP_INSTANCE in its environment.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Callable

from bascule.config.vrrp import TrackConfig
from bascule.health.probes import run_program
from bascule.health.state import HealthCounter

ChangeCallback = Callable[[str, bool, str], None]


def script_key(entry: TrackConfig) -> str:
    """How a script entry is named in events: its command line, quoted as a shell would."""
    return shlex.join((entry.target, *entry.args))


class TrackScript:
    """One script track entry of one instance, run until `stop()`."""

    def __init__(self, instance: str, entry: TrackConfig, on_change: ChangeCallback) -> None:
        self.key = script_key(entry)
        self._instance = instance
        self._entry = entry
        self._on_change = on_change
        self._counter = HealthCounter(entry.rise, entry.fall, "up")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop running the script; one running now is killed (run_program cleans up)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> None:
        """Run the script once and report if the verdict changed."""
        entry = self._entry
        env = {**os.environ, "BASCULE_VRRP_INSTANCE": self._instance}
        result = await run_program(
            entry.target, entry.args, env, entry.timeout, what=f"track script {entry.target}"
        )
        loop = asyncio.get_running_loop()
        transition = self._counter.record(result, loop.time())
        if transition is None:
            return
        verdict = "passed" if transition.up else "failed"
        reason = f"{result.reason} ({transition.count}/{transition.needed} {verdict} in a row)"
        self._on_change(self.key, not transition.up, reason)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.run_once()
            # Runs start `interval` apart; a run that took longer starts the next at once.
            await asyncio.sleep(max(0.0, started + self._entry.interval - loop.time()))
