"""The event journal: every decision the daemon makes, with its reason.

Events go to the log and into a bounded in-memory ring that later features
(admin API, `bascule events`, the dashboard) read. Subscribers are called
synchronously and must not block.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from bascule.model import Event

log = logging.getLogger("bascule.events")

Subscriber = Callable[[Event], None]


class Journal:
    """A bounded, append-only list of recent events with subscribers."""

    def __init__(self, capacity: int = 10_000, wall_clock: Callable[[], float] = time.time):
        self._events: deque[Event] = deque(maxlen=capacity)
        self._subscribers: list[Subscriber] = []
        self._wall_clock = wall_clock

    def record(
        self, kind: str, subject: str, message: str, level: int = logging.INFO, **fields: object
    ) -> Event:
        event = Event(self._wall_clock(), kind, subject, message, dict(fields))
        self._events.append(event)
        log.log(level, "%s", message)
        for subscriber in list(self._subscribers):
            subscriber(event)
        return event

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` for each new event; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def recent(self, kind_prefix: str = "") -> list[Event]:
        return [e for e in self._events if e.kind.startswith(kind_prefix)]
