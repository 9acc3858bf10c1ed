"""gpuflow's own policy in simulated time: ``plan``, ``create_node_pool``, ``wait_node_pool`` and ``train`` with its
recoveries, calling what those operators call, in their order, against clouds that answer from the traces.

The operators (``plugins/gpuflow/operators/nodepool.py``, ``train.py``) read the world from Airflow, Kubernetes and the
clouds; here ``pools.hold`` says when a pool is ready, lost or done, and everything decided on that is gpuflow's code:

- ``plan`` with the clusters' regions and zones; ``Provisioner.create_first`` down the options;
- a pool failing before it is ready: ``abandon`` it and try the following options (``wait_node_pool``), or during a
  recovery ``next_step`` without a replacement and the next offer (``train.pool_event``);
- a node lost: ``node_lost``, ``max_recoveries``, the deadline's ``next_capacity`` from the checkpointed progress and
  the job's checkpoint interval, ``next_step``; then ``note`` and a bounded wait for the cloud's replacement node, or
  ``recall``, ``abandon`` and ``create_first`` over the step's candidates; ``TrainingState`` keeps the recoveries and
  the deadline's decision.

Each job starts with an empty failover memory (an in-memory SQLite ``BlockStore``, emptied between jobs): jobs are
simulated one at a time, each at its own point of the traces, so one job's blocks would be another's future.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete

from bench.cost.clouds import TraceCloud, capacity_error, never_ready
from bench.cost.model import TICK_S, Job, Outcome, hours, ticks
from bench.cost.pools import End, Held, Tally, hold
from bench.cost.world import ACCELERATOR, World
from gpuflow.clouds.base import CloudBackend
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import traits
from gpuflow.core.clusters import Cluster
from gpuflow.core.deadline import Progress, lost_work_for, next_capacity, overheads_for
from gpuflow.core.errors import CloudError
from gpuflow.core.handoffs import PlanHandoff
from gpuflow.core.planner import plan
from gpuflow.core.recovery import NextStep, Phase, Recovery, TrainingState, next_step, where
from gpuflow.core.request import CapacityPreference, PlanRequest
from gpuflow.core.settings import replacement_wait_s
from gpuflow.provisioning import Provisioner, ProvisioningFailed, Run, node_lost
from gpuflow.state.store import BlockStore
from gpuflow.state.tables import blocks_table

DAG_ID = "bench_cost"
MEMORY_URL = "sqlite://"


class RunFailed(Exception):
    """What fails the run in the DAG (recoveries exhausted), or the traces ran out before the work did."""


@dataclass(frozen=True)
class Product:
    """gpuflow run with the request a user would send for the job."""

    name: str
    capacity: CapacityPreference
    deadline: bool  # whether the request carries the job's deadline_hours
    max_fallbacks: int
    max_recoveries: int

    def request(self, job: Job) -> PlanRequest:
        return PlanRequest(
            accelerator=ACCELERATOR,
            capacity=self.capacity,
            estimated_hours=hours(job.work),
            deadline_hours=hours(job.deadline) if self.deadline else None,
            max_fallbacks=self.max_fallbacks,
        )

    def run(self, world: World, job: Job) -> Outcome:
        return _Run(world, job, self).outcome()

    def describe(self) -> str:
        deadline = "the job's deadline" if self.deadline else "none"
        return (
            f"gpuflow's planner, provisioner, failover memory and recovery; request capacity={self.capacity.value}, "
            f"estimated_hours=the job's work, deadline_hours={deadline}, max_fallbacks={self.max_fallbacks}, "
            f"max_recoveries={self.max_recoveries}"
        )


class _Run:
    """One job through gpuflow's tasks; ``tick`` is the simulated now."""

    def __init__(self, world: World, job: Job, product: Product) -> None:
        self.world, self.job, self.product = world, job, product
        self.request = product.request(job)
        self.tick = job.start
        self.memory = empty_memory()
        self.owner = Run(DAG_ID, f"job-{job.index}")
        self.rng = random.Random(job.index)
        self.tally = Tally(job)
        self.saved = 0  # work checkpointed, in ticks
        self.choices: list[dict[str, Any]] = []
        self.state: TrainingState | None = None  # set once training first starts, as train's state store does

    def outcome(self) -> Outcome:
        try:
            self._train_to_the_end()
        except (RunFailed, ProvisioningFailed) as exc:
            return self.tally.failed(str(exc))
        return self.tally.finished(self.tick)

    # ---- plan, create_node_pool, wait_node_pool, train ----

    def _train_to_the_end(self) -> None:
        clusters = self.world.clusters
        planned = plan(
            self.request, self.world.catalog, now=self.now(), clusters=clusters.regions, zones=clusters.zones
        )
        self.choices = PlanHandoff(planned.to_dict()).choices
        _, index = self.provisioner().create_first(self.choices)
        start = self.tick
        while True:
            pool = self._hold(index, start)
            if pool.ended is End.FINISHED:
                return
            if pool.ended is End.STARTUP_FAILED:
                index, start = self._failed_before_ready(index), self.tick
            else:
                index, start = self._recover(index, pool)

    def _hold(self, index: int, start: int) -> Held:
        """The pool of option ``index`` requested at ``start``, until it is done, lost or fails to start."""
        if start >= self.world.horizon:
            raise RunFailed("ran past the end of the traces")
        pool = self.tally.add(hold(self.world.of_choice(self.choices[index]), start, saved=self.saved, job=self.job))
        self.tick, self.saved = pool.end, pool.saved
        if pool.was_ready:
            self._started_training(index, pool)
        return pool

    def _started_training(self, index: int, pool: Held) -> None:
        """Training starts on a ready pool: the run's first (train's state begins) or a recovery's (it resumes)."""
        if self.state is None:
            started = self.at(pool.start).isoformat()
            self.state = TrainingState(pool=_pool(self.choices[index]), segment_started_at=started)
        elif self.state.phase is not Phase.TRAINING:
            self.state = self.state.resumed(self.at(pool.ready_at), accelerators=1)

    def _failed_before_ready(self, index: int) -> int:
        """The pool failed before it was ready: the next option, as wait_node_pool or a recovery's pool_event
        picks it."""
        choice = self.choices[index]
        error = capacity_error(choice["cloud"], f"job-{self.job.index}")
        if self.state is None:
            p = self.provisioner()
            p.abandon(p.spec_for(choice), choice, error)
            return p.create_first(self.choices, range(index + 1, len(self.choices)))[1]
        step = next_step(self.choices, choice, cloud_replaces_nodes=False, on_demand_only=self.state.on_demand_only)
        following = self._next_offer(index, error, step)
        self.state = self.state.waiting_on(_pool(self.choices[following]))
        return following

    # ---- train's recovery ----

    def _recover(self, index: int, pool: Held) -> tuple[int, int]:
        """train._recover: count the loss, ask the deadline, then wait for the cloud's replacement or move on;
        returns the option of the next pool and the tick it is requested (or its replacement node launched)."""
        assert self.state is not None  # a pool is lost only after it was ready
        choice = self.choices[index]
        why = f"spot capacity went at tick {self.tick}"
        recovery = Recovery(
            number=len(self.state.recoveries) + 1,
            lost_at=self.now().isoformat(),
            where=where(_pool(choice)),
            why=why,
            steps_lost=pool.lost,
            step_seconds=TICK_S,
        )
        if recovery.number > self.product.max_recoveries:
            raise RunFailed(f"lost its node {recovery.number} times (max_recoveries={self.product.max_recoveries})")
        on_demand_only = self._deadline_says_on_demand(choice["cloud"])
        error = node_lost(choice, why)
        step = next_step(
            self.choices,
            choice,
            cloud_replaces_nodes=traits(choice["cloud"]).replaces_lost_nodes,
            on_demand_only=on_demand_only,
        )
        if step.wait_for_replacement:
            self.provisioner().note(choice, error)
            self.state = self.state.lost(
                recovery, Phase.REPLACING, _pool(choice), self.now(), on_demand_only=on_demand_only
            )
            return self._replaced_or_next(index)
        following = self._next_offer(index, error, step)
        next_pool = _pool(self.choices[following])
        self.state = self.state.lost(recovery, Phase.PROVISIONING, next_pool, self.now(), on_demand_only=on_demand_only)
        return following, self.tick

    def _replaced_or_next(self, index: int) -> tuple[int, int]:
        """The pool waits up to ``replacement_wait_s`` to be whole again: the cloud launches a node once its
        capacity is back; ready in time, training resumes on it, else train.pool_event moves to the next offer."""
        assert self.state is not None
        choice = self.choices[index]
        offer = self.world.of_choice(choice)
        waited = replacement_wait_s()
        timeout = self.tick + ticks(waited)
        back = offer.availability.up_from(self.tick)
        if back + offer.provision_ticks <= timeout:
            return index, back
        if back < timeout:  # a node launched too late: paid for until its pool is deleted
            late = self.tally.add(hold(offer, back, saved=self.saved, job=self.job, release_at=timeout))
            timeout = min(timeout, late.end)
        self.tick = timeout
        step = next_step(self.choices, choice, cloud_replaces_nodes=False, on_demand_only=self.state.on_demand_only)
        following = self._next_offer(index, never_ready(choice["cloud"], f"job-{self.job.index}", waited), step)
        self.state = self.state.waiting_on(_pool(self.choices[following]))
        return following, self.tick

    def _next_offer(self, lost: int, error: CloudError, step: NextStep) -> int:
        """train._next_offer: delete the lost pool (remembering why), then the first candidate no run found short."""
        p = self.provisioner()
        p.recall()
        p.abandon(p.spec_for(self.choices[lost]), self.choices[lost], error)
        return p.create_first(self.choices, step.candidates)[1]

    def _deadline_says_on_demand(self, cloud: str) -> bool:
        """train._deadline_says_on_demand, with the checkpointed progress as the trainer's progress file says it: a
        step is a tick, and the file, written at each checkpoint, gives the job's checkpoint interval once there is
        one (before it, no file: nothing done of the estimated work, and the plan-time lost work)."""
        if self.request.deadline_hours is None:
            return False
        written = self.saved > 0
        decision = next_capacity(
            now_s=(self.tick - self.job.start) * TICK_S,
            deadline_s=self.request.deadline_hours * 3600,
            progress=Progress(self.saved, self.job.work, TICK_S),
            overheads=overheads_for(cloud, lost_work_s=lost_work_for(self.job.checkpoint if written else None, TICK_S)),
        )
        return decision.capacity is CapacityType.ON_DEMAND

    # ---- the simulated clock and clouds ----

    def provisioner(self) -> Provisioner:
        return Provisioner(
            clusters=self.world.clusters,
            memory=self.memory,
            run=self.owner,
            backends=self._backend,
            sleep=self._sleep,
            clock=self.now,
            rng=self.rng,
        )

    def _backend(self, cluster: Cluster) -> CloudBackend:
        return TraceCloud(cluster, self.world, lambda: self.tick)

    def _sleep(self, seconds: float) -> None:
        self.tick += ticks(seconds)

    def now(self) -> datetime:
        return self.at(self.tick)

    def at(self, tick: int) -> datetime:
        return self.world.epoch + timedelta(seconds=tick * TICK_S)


@cache
def _memory() -> BlockStore:
    return BlockStore(MEMORY_URL)


def empty_memory() -> BlockStore:
    """The failover memory for a new job: one store, emptied (making a store costs more than simulating a job)."""
    store = _memory()
    with store.engine.begin() as connection:
        connection.execute(delete(blocks_table))
    return store


def _pool(choice: dict[str, Any]) -> dict[str, Any]:
    """What ``TrainingState`` keeps of a pool here: its plan option (a ``PoolHandoff`` has more, for Kubernetes)."""
    return {"choice": choice}
