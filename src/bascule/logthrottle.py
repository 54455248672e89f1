"""Log lines for conditions that can recur thousands of times a second.

Running out of file descriptors, for one, fails every accept and every connect
until it is over: one line each would flood the log (and the disk it is on) while
saying nothing new. A `ThrottledLog` writes at most one line per interval and says,
in the next line it writes, how many it held back.
"""

from __future__ import annotations

import logging


class ThrottledLog:
    """At most one line per `interval` seconds through `logger` at `level`."""

    def __init__(self, logger: logging.Logger, level: int, interval: float = 1.0) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self.held = 0  # lines not written since the last one that was
        self._next_at = float("-inf")

    def log(self, now: float, message: str) -> bool:
        """Write `message` unless a line went out less than `interval` ago (`now` is
        any monotonic clock, the same on every call). True when written."""
        if now < self._next_at:
            self.held += 1
            return False
        if self.held:
            message = f"{message} (and {self.held} more like it not logged)"
            self.held = 0
        self._next_at = now + self.interval
        self.logger.log(self.level, "%s", message)
        return True
