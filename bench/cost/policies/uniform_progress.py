"""Uniform Progress, the policy of *Can't Be Late* (Wu et al., NSDI 2024, section 5.2), in one region: our own
implementation from the paper's rules, not gpuflow's.

With ``cp`` the work done, ``ep(t) = W t / D`` the work a uniform pace would have done by ``t``, ``R`` the time to the
deadline, ``C`` the work left and ``d`` the changeover delay (start-up plus the work a loss can throw away: the paper's
``d`` "includes ... any potential progress loss caused by gaps between checkpoints"):

1. Safety net: idle with ``R < C + 2d``: on-demand until the end.
2. Taking risks: spot whenever the region has it; stay on it until it is preempted.
3. Uniform progress: idle, no spot, and ``cp < ep(t)``: on-demand to catch up.
4. Hysteresis: on on-demand, stay until ``cp >= ep(t + 2d)`` (left at a checkpoint, so nothing is thrown away).
Otherwise wait, paying nothing.

The region is the traced (AWS) one holding the cheapest spot offer, the place a user reading prices would pick and a
real trace rather than a synthetic one; spot there means any of its zones, the cheapest one up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.cost.model import Job, Outcome
from bench.cost.pools import Tally, hold
from bench.cost.world import SimOffer, World
from gpuflow.core.catalog import CapacityType


@dataclass(frozen=True)
class UniformProgress:
    name: str = "uniform-progress"

    def run(self, world: World, job: Job) -> Outcome:
        return _Run(world, job).outcome()

    def describe(self) -> str:
        return "the paper's rules in the traced region of the cheapest spot offer; d = start-up + checkpoint interval"


TRACED_CLOUD = "aws"


def home_region(world: World) -> tuple[str, str]:
    spot = (o for o in world.offers if o.capacity is CapacityType.SPOT and o.cloud == TRACED_CLOUD)
    cheapest = min(spot, key=lambda o: (o.hourly_usd, o.key))
    return cheapest.cloud, cheapest.region


class _Run:
    def __init__(self, world: World, job: Job) -> None:
        cloud, region = home_region(world)
        here = [o for o in world.offers if (o.cloud, o.region) == (cloud, region)]
        self.spot = sorted((o for o in here if o.capacity is CapacityType.SPOT), key=lambda o: (o.hourly_usd, o.key))
        self.on_demand = min((o for o in here if o.capacity is CapacityType.ON_DEMAND), key=lambda o: o.hourly_usd)
        self.world, self.job = world, job
        self.delay = self.on_demand.startup_ticks + job.checkpoint  # d
        self.tally = Tally(job)
        self.tick, self.done = job.start, 0

    def outcome(self) -> Outcome:
        while self.done < self.job.work:
            if self.tick >= self.world.horizon:
                return self.tally.failed("ran past the end of the traces")
            self._step()
        return self.tally.finished(self.tick)

    def _step(self) -> None:
        """One decision while idle: what the rules ask for now, held until it ends (or the wait until they change)."""
        spot = self._spot_up(self.tick)
        if self._left() < self._remaining() + 2 * self.delay:
            self._use(self.on_demand, release_at=None)
        elif spot is not None:
            self._use(spot, release_at=None)
        elif self.done < self._expected(self.tick):
            self._use(self.on_demand, release_at=self._leave_on_demand())
        else:
            self.tick = self._next_decision()

    def _use(self, offer: SimOffer, release_at: int | None) -> None:
        pool = self.tally.add(hold(offer, self.tick, saved=self.done, job=self.job, release_at=release_at))
        self.tick, self.done = pool.end, pool.saved

    def _leave_on_demand(self) -> int | None:
        """The first checkpoint on on-demand where spot is up and ``cp >= ep(t + 2d)`` (rule 4); None: never."""
        training = self.tick + self.on_demand.startup_ticks
        first = self.done // self.job.checkpoint + 1
        for saved in range(first * self.job.checkpoint, self.job.work, self.job.checkpoint):
            at = training + saved - self.done
            if self._spot_up(at) is not None and saved >= self._expected(at + 2 * self.delay):
                return at
        return None

    def _next_decision(self) -> int:
        """While waiting: the first tick spot is back, ``ep`` passes ``cp``, or the safety net is due."""
        back = min(o.availability.up_from(self.tick) for o in self.spot)
        behind = self.job.start + math.floor(self.done * self.job.deadline / self.job.work) + 1
        net = self.job.start + self.job.deadline - self._remaining() - 2 * self.delay + 1
        return max(self.tick + 1, min(back, behind, net))

    def _spot_up(self, tick: int) -> SimOffer | None:
        return next((o for o in self.spot if o.availability.is_up(tick)), None)

    def _expected(self, tick: int) -> float:
        return self.job.work * (tick - self.job.start) / self.job.deadline

    def _left(self) -> int:
        return self.job.start + self.job.deadline - self.tick

    def _remaining(self) -> int:
        return self.job.work - self.done
