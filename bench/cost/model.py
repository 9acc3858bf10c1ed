"""The simulation's units and records: time in ticks, a job, and what one policy did on one job.

Time is counted in ticks of ``TICK_S`` seconds, a third of the AWS traces' 195-s probe interval, so a trace value
covers three ticks and start-up times of a few minutes are kept to within a minute. Every duration (provisioning,
restart, checkpoint interval, work, deadline) is a whole number of ticks; that is what lets ``optimum`` be exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TICK_S = 65


def ticks(seconds: float) -> int:
    """A duration in whole ticks, rounded up: a start-up is never shorter in the simulation than in the figure."""
    return math.ceil(seconds / TICK_S - 1e-9)


def hours(tick_count: float) -> float:
    return tick_count * TICK_S / 3600


@dataclass(frozen=True, slots=True)
class Job:
    """A training job: ``work`` ticks of GPU time, due ``deadline`` ticks after ``start`` (a tick of the traces),
    saving a checkpoint every ``checkpoint`` ticks of work."""

    index: int
    start: int
    work: int
    deadline: int
    checkpoint: int

    def __post_init__(self) -> None:
        if self.checkpoint <= 0 or not 0 < self.work < self.deadline:
            raise ValueError(f"job {self.index}: needs 0 < work < deadline and a checkpoint interval > 0: {self}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy did on one job: ``finished_at`` ticks after the job's start, or None when the run failed
    (``failure`` says why; ``cost_usd`` is then what it spent before failing)."""

    cost_usd: float
    finished_at: int | None
    preemptions: int
    recoveries: int
    failure: str = ""
    on_demand_usd: float = 0.0  # the part of the cost paid for on-demand capacity

    def on_time(self, job: Job) -> bool:
        return self.finished_at is not None and self.finished_at <= job.deadline
