"""The job mix: GPU work from 1 to 48 hours, deadlines from 1.1x to 3x the work, a checkpoint interval each, and a
start somewhere in the traces, all drawn from one seed.

Work is log-uniform (as many 1-2 h jobs as 24-48 h ones), the deadline factor uniform. A draw no schedule could meet
(the deadline shorter than the work plus the quickest start-up, e.g. 1.1x a one-hour job) tests no policy, so it is
drawn again; how many were is reported.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bench.cost.model import Job, ticks

WORK_HOURS = (1.0, 48.0)
DEADLINE_FACTOR = (1.1, 3.0)
CHECKPOINT_MINUTES = (10, 15, 30, 60)


@dataclass(frozen=True)
class JobMix:
    jobs: tuple[Job, ...]
    redrawn: int  # draws no schedule could meet


def job_mix(count: int, *, seed: int, trace_ticks: int, quickest_startup: int) -> JobMix:
    """``count`` jobs, each due within the first ``trace_ticks`` ticks of the traces."""
    rng = random.Random(seed)
    jobs: list[Job] = []
    redrawn = 0
    while len(jobs) < count:
        work = ticks(3600 * math.exp(rng.uniform(math.log(WORK_HOURS[0]), math.log(WORK_HOURS[1]))))
        deadline = math.floor(work * rng.uniform(*DEADLINE_FACTOR))
        checkpoint = ticks(60 * rng.choice(CHECKPOINT_MINUTES))
        start = rng.randrange(trace_ticks - deadline)
        if deadline < work + quickest_startup:
            redrawn += 1
            continue
        jobs.append(Job(len(jobs), start, work, deadline, checkpoint))
    return JobMix(tuple(jobs), redrawn)
