"""Which phase of a demo each failed request belongs to: pure, so the sums can be tested.

A demo's events (a node killed, a node restarted) cut its run into phases: before the
first event; from each event until the client's first answer after it (the outage); and
from that answer until the next event (or the end). A failed request belongs to the phase
in which it failed, i.e. when its error came (`failed_at`): a request sent just before a
kill that dies with the killed node's connection is one of the kill's failures. The phases
cover the whole run without overlapping, so every failure is counted exactly once and
the phases add up to the total.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """Something the demo did, and when the client got its first answer after it."""

    name: str  # "lb1 killed"
    at: float
    recovered_at: float | None = None  # None: no answer came before the next event


@dataclass
class Phase:
    name: str
    start: float  # -inf for the first phase
    failures: Counter[str] = field(default_factory=Counter)  # cause -> count

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def phases(events: Sequence[Event], failures: Iterable[tuple[float, str]]) -> list[Phase]:
    """The phases cut by `events` (in time order), with each failure (time, cause) in one.

    A recovery time at or after the next event ends nothing: the outage then lasts until
    that event.
    """
    cuts = [Phase(f"before {events[0].name}" if events else "whole run", float("-inf"))]
    for index, event in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        until = float("inf") if following is None else following.at
        cuts.append(Phase(f"{event.name}, until the first answer after it", event.at))
        if event.recovered_at is not None and event.at <= event.recovered_at < until:
            cuts.append(Phase(f"after that answer, until {_next(following)}", event.recovered_at))
    starts = [phase.start for phase in cuts]
    for failed_at, cause in failures:
        cuts[bisect.bisect_right(starts, failed_at) - 1].failures[cause] += 1
    return cuts


def _next(event: Event | None) -> str:
    return "the end" if event is None else event.name
