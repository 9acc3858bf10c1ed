"""The job mix: fixed by its seed, within the issue's ranges, and never a job no schedule could meet."""

from __future__ import annotations

from bench.cost.jobs import job_mix
from bench.cost.model import TICK_S


def test_the_same_seed_gives_the_same_jobs_and_another_seed_others() -> None:
    assert job_mix(50, seed=1, trace_ticks=60_000, quickest_startup=8) == job_mix(
        50, seed=1, trace_ticks=60_000, quickest_startup=8
    )
    assert job_mix(50, seed=2, trace_ticks=60_000, quickest_startup=8) != job_mix(
        50, seed=1, trace_ticks=60_000, quickest_startup=8
    )


def test_jobs_fit_the_ranges_and_end_within_the_trace() -> None:
    mix = job_mix(400, seed=4, trace_ticks=60_000, quickest_startup=8)
    for job in mix.jobs:
        assert 3600 <= job.work * TICK_S <= 48 * 3600 + TICK_S
        assert 1.1 * job.work - 1 <= job.deadline <= 3 * job.work
        assert job.work + 8 <= job.deadline
        assert job.start + job.deadline <= 60_000
    assert mix.redrawn > 0  # 1.1x of a short job leaves less than a start-up: such draws are made again
