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

FALLBACKS = 32  # the most a request allows: every traced offer is a fallback
RECOVERIES = 20  # the most a job allows: long spot jobs meet many preemptions


def policies(max_fallbacks: int = FALLBACKS, max_recoveries: int = RECOVERIES) -> tuple[Policy, ...]:
    """The policies compared; gpuflow's three with the request fields a user asking for the cheapest would send."""
    request = {"max_fallbacks": max_fallbacks, "max_recoveries": max_recoveries}
    return (
        Naive(),
        Product("on-demand", CapacityPreference.ON_DEMAND, deadline=False, **request),
        Product("spot-greedy", CapacityPreference.SPOT_THEN_ON_DEMAND, deadline=False, **request),
        UniformProgress(),
        Product("gpuflow", CapacityPreference.SPOT_THEN_ON_DEMAND, deadline=True, **request),
    )


POLICIES = policies()
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
