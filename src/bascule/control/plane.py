"""The control plane: server state per backend, published to the data plane.

Live-traffic outcomes arrive through `BackendController` (the data plane's
`OutcomeSink`); state changes become events in the journal and a new
immutable snapshot installed in the backend's runtime. The data plane
never asks "is this server healthy?": it only picks from snapshots.
"""

from __future__ import annotations

import asyncio
import logging

from bascule.config import BackendConfig
from bascule.control.journal import Journal
from bascule.control.passive import PassiveDetector, Transition
from bascule.model import BackendSnapshot, ServerState, ServerView
from bascule.proxy.runtime import BackendRuntime


def initial_snapshot(config: BackendConfig, addresses: dict[str, str]) -> BackendSnapshot:
    """The first snapshot of a backend, from its config and resolved addresses."""
    servers = tuple(
        ServerView(
            backend=config.name,
            name=s.name,
            host=addresses.get(s.name, s.address),
            port=s.port,
            weight=s.weight,
            backup=s.backup,
            max_connections=s.max_connections,
            state=ServerState(s.initial_state),
            index=i,
        )
        for i, s in enumerate(config.servers)
    )
    return BackendSnapshot(config.name, servers, version=1)


class BackendController:
    """Decides the state of one backend's servers and publishes snapshots."""

    def __init__(
        self,
        config: BackendConfig,
        snapshot: BackendSnapshot,
        journal: Journal,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config = config
        self.journal = journal
        self.loop = loop
        self.version = snapshot.version
        self.detector = PassiveDetector(
            snapshot.servers, config.passive.max_fails, config.passive.fail_timeout
        )
        self.runtime = BackendRuntime(config, snapshot, self)
        self._tick_handle: asyncio.TimerHandle | None = None

    # -- OutcomeSink -----------------------------------------------------------------

    def failure(self, server: ServerView, reason: str) -> None:
        transition = self.detector.failure(server.key, reason, self.loop.time())
        if transition is not None:
            self._apply([transition])

    def success(self, server: ServerView) -> None:
        self.detector.success(server.key)

    # -- publishing -------------------------------------------------------------------

    def _apply(self, transitions: list[Transition]) -> None:
        for t in transitions:
            kind = "server.down" if t.new is ServerState.DOWN else "server.up"
            level = logging.WARNING if t.new is ServerState.DOWN else logging.INFO
            self.journal.record(kind, t.server.key, t.reason, level, state=t.new.value)
        self.version += 1
        snapshot = BackendSnapshot(self.config.name, self.detector.servers, self.version)
        had_traffic = any(s.takes_new_traffic for s in self.runtime.snapshot.servers)
        self.runtime.install(snapshot)
        if had_traffic and not any(s.takes_new_traffic for s in snapshot.servers):
            self.journal.record(
                "backend.unavailable",
                self.config.name,
                f"backend {self.config.name}: no server available (HTTP clients get 503, TCP "
                "connections are closed)",
                logging.ERROR,
            )
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        deadline = self.detector.next_deadline()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if deadline is not None:
            self._tick_handle = self.loop.call_at(deadline, self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        transitions = self.detector.tick(self.loop.time())
        if transitions:
            self._apply(transitions)
        else:
            self._schedule_tick()

    def stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
