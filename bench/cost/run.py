"""Every policy on every job of the mix, and the hindsight optimum, with the check that no run meeting its deadline
costs less than the optimum (which would mean a bug in the simulator or in the optimum)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.cost.model import Job, Outcome
from bench.cost.optimum import cheapest
from bench.cost.policies import Policy
from bench.cost.policies.fixed import Naive
from bench.cost.policies.product import Product
from bench.cost.policies.uniform_progress import UniformProgress
from bench.cost.world import World
from gpuflow.core.request import CapacityPreference

POLICIES: tuple[Policy, ...] = (
    Naive(),
    Product("on-demand", CapacityPreference.ON_DEMAND, deadline=False),
    Product("spot-greedy", CapacityPreference.SPOT_THEN_ON_DEMAND, deadline=False),
    UniformProgress(),
    Product("gpuflow", CapacityPreference.SPOT_THEN_ON_DEMAND, deadline=True),
)
OPTIMUM = "optimum"
SLACK_USD = 1e-9  # float sums in a different order


class OptimumBeaten(AssertionError):
    """An on-time run cost less than the optimum."""


@dataclass(frozen=True)
class JobResult:
    job: Job
    optimum_usd: float
    outcomes: dict[str, Outcome]


def run_all(world: World, jobs: Iterable[Job], policies: Sequence[Policy] = POLICIES) -> list[JobResult]:
    results = []
    for job in jobs:
        result = JobResult(job, cheapest(world.offers, job), {p.name: p.run(world, job) for p in policies})
        check(result)
        results.append(result)
    return results


def check(result: JobResult) -> None:
    for name, outcome in result.outcomes.items():
        if outcome.on_time(result.job) and outcome.cost_usd < result.optimum_usd - SLACK_USD:
            raise OptimumBeaten(
                f"{name} finished {result.job} for {outcome.cost_usd:.6f} USD, below the optimum's "
                f"{result.optimum_usd:.6f}"
            )
