"""Reload requests, one at a time: SIGHUP and `bascule reload` both come here.

A reload takes a moment (the file is read and validated, names resolved). Requests
that arrive meanwhile are coalesced: they all get the outcome of one more reload that
starts once the running one is over, so a burst of SIGHUPs (a deploy tool, a
`systemctl reload` loop) ends in exactly the configuration of the file as it is after
the last one, and the daemon never applies two reloads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bascule")


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did: the file read, and either the changes or every problem."""

    ok: bool
    config: str
    generation: int
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def reply(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "config": self.config,
            "generation": self.generation,
            "changes": self.changes,
            "problems": self.problems,
        }


ReloadFunction = Callable[[str], Awaitable[ReloadOutcome]]


class Reloader:
    """Runs `reload(path)` for each request, one at a time, coalescing bursts."""

    def __init__(self, reload: ReloadFunction, path: str) -> None:
        self.path = path  # the daemon's config file: a successful `reload -c FILE` changes it
        self._reload = reload
        self._next_path: str | None = None
        self._waiting: list[asyncio.Future[ReloadOutcome]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def request(self, path: str | None = None) -> asyncio.Future[ReloadOutcome]:
        """Ask for a reload (of `path`, from then on the config file, if given); the
        future has the outcome of the first reload that starts after this request."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ReloadOutcome] = loop.create_future()
        if self._closed:
            done.set_exception(RuntimeError("the daemon is stopping: no reload"))
            return done
        if path is not None:
            self._next_path = path
        self._waiting.append(done)
        if self._task is None:
            self._task = loop.create_task(self._run())
        return done

    async def _run(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                path = self._next_path or self.path
                self._next_path = None
                try:
                    outcome = await self._reload(path)
                except Exception as exc:  # the daemon keeps its config and keeps serving
                    log.exception("reload of %s failed", path)
                    outcome = ReloadOutcome(False, path, 0, problems=[f"internal error: {exc}"])
                if outcome.ok:
                    self.path = path
                for done in waiting:
                    if not done.done():
                        done.set_result(outcome)
        finally:
            self._task = None

    async def close(self) -> None:
        """No more reloads; wait for the one running, if any (stopping waits for it)."""
        self._closed = True
        task = self._task
        if task is not None:
            await asyncio.shield(task)
        for done in self._waiting:
            if not done.done():
                done.set_exception(RuntimeError("the daemon is stopping: no reload"))
        self._waiting.clear()
