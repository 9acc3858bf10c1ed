"""The seed's policy: AWS on-demand, else GCP, with no memory of failures.

On-demand capacity is always there in the simulation (as in the paper), so AWS's cheapest on-demand offer always
takes the job and the GCP branch is never reached: one pool from the job's start to its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.cost.model import Job, Outcome
from bench.cost.pools import Tally, hold
from bench.cost.world import World
from gpuflow.core.catalog import CapacityType


@dataclass(frozen=True)
class Naive:
    name: str = "naive"

    def run(self, world: World, job: Job) -> Outcome:
        aws = [o for o in world.offers if o.cloud == "aws" and o.capacity is CapacityType.ON_DEMAND]
        offer = min(aws, key=lambda o: (o.hourly_usd, o.region, o.zone or ""))
        tally = Tally(job)
        pool = tally.add(hold(offer, job.start, saved=0, job=job))
        return tally.finished(pool.end)

    def describe(self) -> str:
        return "AWS's cheapest on-demand offer (else GCP, never needed: on-demand is always there); no memory"
