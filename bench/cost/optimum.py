"""The hindsight optimum: the cheapest way to finish a job by its deadline knowing every offer's future capacity.

Exact for the simulation's model, by dynamic programming over ticks. A schedule is a sequence of pools; each is paid
from its request, starts up for its offer's start-up ticks, then trains, and on spot needs its capacity up the whole
time. Knowing the future, a schedule never has a pool taken from it: ending a pool at its last checkpoint instead
costs less and loses nothing, so every pool ends at a checkpoint or at the end of the work, and progress moves in
whole checkpoint intervals. The states are then (checkpoints done, tick, offer held or none):

- ``idle[t]``: the cheapest way to have this many checkpoints done and no pool at tick t (waiting is free);
- ``held[o][t]``: the same, still holding a pool on offer o that can train on at tick t.

Each checkpoint interval ``c`` is done either on the pool held (``held[o][t] + c`` ticks of o) or on a new pool
(``idle[t] + start-up + c`` ticks of o), each needing o up for all those ticks. Every policy's run is one such
schedule or costs more (a preemption pays for work it throws away), so on a run that meets the deadline no policy can
beat it; the benchmark checks that on every job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bench.cost.model import TICK_S, Job
from bench.cost.world import SimOffer
from gpuflow.core.catalog import CapacityType

Costs = npt.NDArray[np.float64]


def cheapest(offers: Sequence[SimOffer], job: Job) -> float:
    """The least USD any schedule pays to finish ``job`` on ``offers`` by its deadline (inf if none can)."""
    horizon = job.deadline
    groups = [_Group.of(same, job) for same in _by_startup(_worth_trying(offers))]
    idle = np.zeros(horizon + 1)  # nothing done yet costs nothing, at any tick
    for done in range(0, job.work, job.checkpoint):
        chunk = min(job.checkpoint, job.work - done)
        after = [group.train(idle, chunk) for group in groups]
        idle = np.minimum.accumulate(np.minimum.reduce([costs.min(axis=0) for costs in after]))
    return float(idle[horizon]) * TICK_S / 3600


class _Group:
    """The offers that start up in the same number of ticks, computed together (one row each)."""

    def __init__(self, startup: int, prices: Costs, up_for: npt.NDArray[np.int64]) -> None:
        self.startup, self.prices, self.up_for = startup, prices, up_for
        self.held = np.full((len(prices), up_for.shape[1] + 1), math.inf)

    @classmethod
    def of(cls, offers: Sequence[SimOffer], job: Job) -> _Group:
        """``up_for[o, t]``: how many ticks from tick t of the job's window offer o stays up, cut at the deadline."""
        window = np.arange(job.start, job.start + job.deadline)
        left = job.deadline - np.arange(job.deadline)
        up_for = np.stack([np.minimum(o.availability.next_down[window] - window, left) for o in offers])
        prices = np.array([[o.hourly_usd] for o in offers])
        return cls(offers[0].startup_ticks, prices, up_for)

    def train(self, idle: Costs, chunk: int) -> Costs:
        """The cheapest cost of holding each offer at each tick right after ``chunk`` more ticks of work on it: on
        the pool held since the last checkpoint, or on a new one started from ``idle``."""
        horizon = len(idle) - 1
        out = np.full_like(self.held, math.inf)
        if horizon >= chunk:
            go_on = self.up_for[:, : horizon - chunk + 1] >= chunk
            out[:, chunk:] = np.where(go_on, self.held[:, : horizon - chunk + 1] + self.prices * chunk, math.inf)
        span = self.startup + chunk
        if horizon >= span:
            start = self.up_for[:, : horizon - span + 1] >= span
            fresh = np.where(start, idle[: horizon - span + 1] + self.prices * span, math.inf)
            out[:, span:] = np.minimum(out[:, span:], fresh)
        self.held = out
        return out


def _by_startup(offers: Sequence[SimOffer]) -> list[list[SimOffer]]:
    groups: dict[int, list[SimOffer]] = {}
    for offer in offers:
        groups.setdefault(offer.startup_ticks, []).append(offer)
    return [groups[startup] for startup in sorted(groups)]


def _worth_trying(offers: Sequence[SimOffer]) -> list[SimOffer]:
    """The spot offers, and the on-demand ones no other beats on both price and start-up: on-demand is never short,
    so a cheaper one that starts as fast does anything a dearer one does, for less."""
    front: list[SimOffer] = []
    for offer in sorted((o for o in offers if o.capacity is CapacityType.ON_DEMAND), key=_price_then_startup):
        if not front or offer.startup_ticks < front[-1].startup_ticks:
            front.append(offer)
    return [o for o in offers if o.capacity is not CapacityType.ON_DEMAND] + front


def _price_then_startup(offer: SimOffer) -> tuple[float, int]:
    return offer.hourly_usd, offer.startup_ticks
