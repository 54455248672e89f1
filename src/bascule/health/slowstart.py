"""Slow start: the effective weight of a server that just came back (pure).

This module owns the ramp alone: given when the server re-entered service, it says
what weight the data plane should use now and when that weight next changes.

Like HAProxy's `slowstart` (src/server.c, `server_recalc_eweight()` and the
`server_warmup` task), the weight grows linearly from a small first step to the full
weight over `slow_start` seconds. HAProxy re-evaluates every max(1s, slowstart/20),
"resulting in small 5% steps"; we keep its 5% first step but publish at most
`RAMP_STEPS` changes per ramp, because every change costs a new snapshot for the data
plane. The first step is never 0 for a server with weight > 0: a server that is UP
must be pickable (HAProxy: "it must also start immediately, at least at the minimal
step").

HAProxy never applies slow start when it boots ("it only applies when a server has
been previously seen as failed"); the caller decides that by passing `up_since=None`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RAMP_STEPS = 10
FIRST_STEP_FRACTION = 0.05


@dataclass(frozen=True, slots=True)
class RampPoint:
    """The weight to publish now, and when it next changes (None: it is final)."""

    weight: int
    next_change: float | None


def first_step(weight: int) -> int:
    """The weight right after re-entering service: ~5% of it, at least 1."""
    return max(1, math.ceil(weight * FIRST_STEP_FRACTION)) if weight > 0 else 0


def effective_weight(
    weight: int, up_since: float | None, now: float, slow_start: float
) -> RampPoint:
    """The ramped weight at `now` of a server in service since `up_since`.

    The ramp has `RAMP_STEPS` equal steps; step k (0-based) weighs
    ceil(first + (weight - first) * k / RAMP_STEPS), so it is monotonic, starts at
    `first_step(weight)` and reaches `weight` exactly `slow_start` seconds after
    `up_since`. Steps that would not change the integer weight are skipped.
    """
    if up_since is None or slow_start <= 0 or weight <= 0:
        return RampPoint(weight, None)
    step = _step_at(up_since, now, slow_start)
    current = _weight_at_step(weight, step)
    for later in range(step + 1, RAMP_STEPS + 1):
        if _weight_at_step(weight, later) != current:
            return RampPoint(current, _boundary(up_since, later, slow_start))
    return RampPoint(current, None)


def _boundary(up_since: float, step: int, slow_start: float) -> float:
    if step >= RAMP_STEPS:
        return up_since + slow_start  # exact: full weight is promised *by* slow_start
    return up_since + slow_start * step / RAMP_STEPS


def _step_at(up_since: float, now: float, slow_start: float) -> int:
    """The last step whose boundary is <= now.

    Compared with the very expression `next_change` is computed from, so that a caller
    woken exactly at `next_change` always sees the new step (a float-rounded division
    could land just below it and have the caller wake at the same instant forever).
    """
    step = max(0, min(RAMP_STEPS, math.floor((now - up_since) * RAMP_STEPS / slow_start)))
    while step < RAMP_STEPS and _boundary(up_since, step + 1, slow_start) <= now:
        step += 1
    while step > 0 and _boundary(up_since, step, slow_start) > now:
        step -= 1
    return step


def _weight_at_step(weight: int, step: int) -> int:
    start = first_step(weight)
    # Integer ceiling division: exact, no float rounding at the step boundaries.
    return start + -(-(weight - start) * step // RAMP_STEPS)
