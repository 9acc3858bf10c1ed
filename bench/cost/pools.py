"""One pool held on one offer: what it cost, how far training got and why it ended. The simulator's accounting.

A pool is paid for every tick from its request to its end. It provisions (``provision_ticks``), the training pod
starts and loads the checkpoint (``restart_ticks``), then each tick trains one tick of work. Progress is saved every
``checkpoint`` ticks of work; the trainer's SIGTERM checkpoint is not counted on (a notice can come too late, a node
can go without one), so whatever ends a pool loses the work since the last checkpoint. A pool ends at the first of:
the work done (FINISHED), its release by the policy (RELEASED), or the first tick its capacity is gone (STARTUP_FAILED
before the pool is ready, LOST after). Nothing here decides anything: policies call ``hold`` and act on its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bench.cost.model import Job, Outcome
from bench.cost.world import SimOffer
from gpuflow.core.catalog import CapacityType


class End(StrEnum):
    FINISHED = "finished"
    RELEASED = "released"
    STARTUP_FAILED = "startup failed"  # capacity went before the pool was ready
    LOST = "lost"  # capacity went after the pool was ready: a preemption


@dataclass(frozen=True, slots=True)
class Held:
    """A pool on ``offer`` from tick ``start`` to ``end`` (exclusive); ``saved``: the work checkpointed when it
    ended; ``lost``: the work done since that checkpoint, thrown away."""

    offer: SimOffer
    start: int
    end: int
    ended: End
    saved: int
    lost: int = 0

    @property
    def ready_at(self) -> int:
        return self.start + self.offer.provision_ticks

    @property
    def was_ready(self) -> bool:
        return self.end >= self.ready_at and self.ended is not End.STARTUP_FAILED

    @property
    def cost_usd(self) -> float:
        return self.offer.usd(self.end - self.start)


def hold(offer: SimOffer, start: int, *, saved: int, job: Job, release_at: int | None = None) -> Held:
    """The pool requested on ``offer`` at ``start`` with ``saved`` ticks of work checkpointed."""
    training = start + offer.startup_ticks
    finish = training + job.work - saved
    gone = offer.availability.down_from(start)
    release = finish if release_at is None else release_at
    if finish <= min(release, gone):
        return Held(offer, start, finish, End.FINISHED, job.work)
    end = min(release, gone)
    done = saved + max(0, end - training)
    kept = max(saved, done - done % job.checkpoint)
    if release <= gone:
        return Held(offer, start, end, End.RELEASED, kept, done - kept)
    ended = End.STARTUP_FAILED if gone < start + offer.provision_ticks else End.LOST
    return Held(offer, start, end, ended, kept, done - kept)


@dataclass
class Tally:
    """The pools one policy held for one job, counted into its ``Outcome``: a preemption is a pool LOST, a recovery
    a later pool that became ready after one."""

    job: Job
    held: list[Held] = field(default_factory=list)
    preemptions: int = 0
    recoveries: int = 0
    _awaiting_recovery: bool = False

    def add(self, pool: Held) -> Held:
        self.held.append(pool)
        if self._awaiting_recovery and pool.was_ready:
            self.recoveries += 1
            self._awaiting_recovery = False
        if pool.ended is End.LOST:
            self.preemptions += 1
            self._awaiting_recovery = True
        return pool

    def finished(self, at: int) -> Outcome:
        return self._outcome(at - self.job.start)

    def failed(self, why: str) -> Outcome:
        return self._outcome(None, why)

    def _outcome(self, finished_at: int | None, failure: str = "") -> Outcome:
        on_demand = sum(p.cost_usd for p in self.held if p.offer.capacity is CapacityType.ON_DEMAND)
        total = sum(p.cost_usd for p in self.held)
        return Outcome(total, finished_at, self.preemptions, self.recoveries, failure, on_demand)
