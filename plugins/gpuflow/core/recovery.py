"""After a training pod or an endpoint is lost: was it its node (a spot preemption, a node loss) or the work itself,
what the loss cost, and the state a recovering run keeps so that any worker (after a crash, a restart) can carry it
on. One state per run, whichever task found the loss (``train`` or an endpoint task): the run holds one pool at a
time, and ``max_recoveries`` counts every recovery of the run.

Pure: the operator reads the pod and the pool's nodes from Kubernetes and hands them here as plain data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gpuflow.core.catalog import CapacityType
from gpuflow.core.nodepool import NodeReport

# The reasons Kubernetes gives a pod that ended because its node went, not because its containers failed:
# kubelet's graceful node shutdown ("Terminated", GKE spot preemption), the node lifecycle controller
# ("NodeLost"), an eviction by a drain (EKS/AKS spot notices, "Evicted").
NODE_LOSS_POD_REASONS = frozenset({"Terminated", "NodeLost", "Evicted", "Shutdown", "NodeShutdown"})


@dataclass(frozen=True, slots=True)
class PodView:
    """What is left to see of the training pod when it failed (``gone``: deleted, as an eviction does)."""

    gone: bool
    reason: str | None = None
    message: str | None = None
    disruption: str | None = None  # the reason of a True ``DisruptionTarget`` condition


@dataclass(frozen=True, slots=True)
class RanOn:
    """The node the pod was placed on, and that node now: ``now`` None when it is gone, ``created_at`` when its
    Node object was (re)created."""

    node: str
    placed_at: datetime
    now: NodeReport | None
    created_at: datetime | None


def node_loss(
    pod: PodView, nodes: Sequence[NodeReport], expected_nodes: int, ran_on: RanOn | None = None
) -> str | None:
    """Why the training pod's end was its node's doing (one sentence), or None: its own failure.

    The pod's own status says it when it is still there; an evicted pod is gone, so the nodes speak for it: the
    one it ran on gone or recreated since (a late look, after the cloud replaced it), or the pool's nodes fewer than
    planned, cordoned, or not Ready. A pod gone while its node is the same healthy one (a person deleted it) is
    not a node loss.
    """
    if pod.disruption:
        return f"the pod was disrupted ({pod.disruption}{': ' + pod.message if pod.message else ''})"
    if pod.reason in NODE_LOSS_POD_REASONS:
        return f"the pod ended with reason {pod.reason}{': ' + pod.message if pod.message else ''}"
    cordoned = [n.name for n in nodes if n.unschedulable]
    if cordoned:
        return f"node {', '.join(cordoned)} was cordoned and drained (a spot interruption notice)"
    not_ready = [n.name for n in nodes if not n.ready]
    if not_ready:
        return f"node {', '.join(not_ready)} is not Ready (shutting down)"
    if len(nodes) < expected_nodes:
        return f"the pool has {len(nodes)} of its {expected_nodes} node(s): a node was removed"
    if ran_on is not None and ran_on.now is None:
        return f"node {ran_on.node}, which ran the pod, is gone (taken back and replaced)"
    if ran_on is not None and ran_on.created_at is not None and ran_on.created_at > ran_on.placed_at:
        return f"node {ran_on.node} was recreated after the pod was placed on it (a preempted VM brought back)"
    return None


def steps_lost(*, lost_at: datetime, checkpoint_at: datetime | None, step_seconds: float | None) -> int | None:
    """At most how many steps since the last checkpoint the loss threw away (None: no progress known)."""
    if checkpoint_at is None or not step_seconds:
        return None
    return max(0, math.floor((lost_at - checkpoint_at).total_seconds() / step_seconds))


@dataclass(frozen=True, slots=True)
class NextStep:
    """Where a recovery gets capacity again: the same pool (``wait_for_replacement``, within a bound) or the first
    of ``candidates`` (indices into the plan's options, in order) that a cloud accepts and no run found short."""

    wait_for_replacement: bool
    candidates: tuple[int, ...]
    warning: str | None = None


def next_step(
    choices: Sequence[Mapping[str, Any]], lost: Mapping[str, Any], *, cloud_replaces_nodes: bool, on_demand_only: bool
) -> NextStep:
    """The recovery after the pool of option ``lost`` lost its node.

    Waiting for the cloud to replace the node keeps the run where it is (the cheapest place it found), unless the
    deadline wants on-demand and the pool is spot. Moving on considers every option of the plan in its order: the
    provisioner skips the ones any run found short since, the lost one included.
    """
    spot = lost["capacity_type"] == CapacityType.SPOT.value
    wait = cloud_replaces_nodes and not (spot and on_demand_only)
    on_demand = tuple(i for i, c in enumerate(choices) if c["capacity_type"] == CapacityType.ON_DEMAND.value)
    if not on_demand_only:
        return NextStep(wait, tuple(range(len(choices))))
    if not on_demand:
        warning = "the deadline wants on-demand capacity, but the plan has none (capacity=spot): it may be missed"
        return NextStep(wait, tuple(range(len(choices))), warning)
    return NextStep(wait, on_demand)


class Phase(StrEnum):
    TRAINING = "training"  # the pod runs (or is about to) on ``pool``
    SERVING = "serving"  # training is done; the endpoint serves (or is about to, after a recovery) on ``pool``
    REPLACING = "replacing"  # waiting, within a bound, for the cloud to replace the pool's lost node
    PROVISIONING = "provisioning"  # a new pool was requested on the next offer


# The phases in which no pool is usable yet: a new try of a task that works on the pool waits for it first.
RECOVERING = frozenset({Phase.REPLACING, Phase.PROVISIONING})


@dataclass(frozen=True, slots=True)
class Recovery:
    """One recovery, as the log line and the cost report show it."""

    number: int
    lost_at: str  # ISO time the loss was seen
    where: str  # cloud/region/zone instance (capacity) of the pool lost
    why: str
    steps_lost: int | None
    step_seconds: float | None = None  # the training's measured time per step, when known
    gpu_hours_lost: float | None = None  # accelerators x (lost work + time to resume), set once resumed
    resumed_at: str | None = None  # ISO time training restarted (or the endpoint served again)
    resumed_on: str | None = None
    during: str = Phase.TRAINING.value  # what the loss interrupted: training, or serving


@dataclass(frozen=True, slots=True)
class TrainingState:
    """Where a run's training stands, kept in the state store (not in XCom: a new try of the task clears those).

    ``pool`` is the ``PoolHandoff`` XCom dict of the pool training runs or will run on; ``segment_started_at``
    when the run started paying for it (the cost ledger's current segment).
    """

    pool: dict[str, Any]
    segment_started_at: str
    phase: Phase = Phase.TRAINING
    recoveries: tuple[Recovery, ...] = field(default_factory=tuple)
    # The deadline's decision at the last loss: no room for another preemption, so spot offers are skipped until
    # training resumes. Not a latch: the next loss decides again, on what the trainer's progress file says then.
    on_demand_only: bool = False

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "phase": self.phase.value})

    @classmethod
    def from_json(cls, text: str) -> TrainingState:
        data = json.loads(text)
        return cls(
            pool=data["pool"],
            segment_started_at=data["segment_started_at"],
            phase=Phase(data["phase"]),
            recoveries=tuple(Recovery(**r) for r in data.get("recoveries", ())),
            on_demand_only=bool(data.get("on_demand_only", False)),
        )

    def lost(
        self, recovery: Recovery, phase: Phase, pool: Mapping[str, Any], at: datetime, *, on_demand_only: bool = False
    ) -> TrainingState:
        """The state after a loss: waiting for ``pool`` (the same one, or a new one), a new segment from ``at``."""
        return replace(
            self,
            pool=dict(pool),
            phase=phase,
            segment_started_at=at.isoformat(),
            recoveries=(*self.recoveries, recovery),
            on_demand_only=on_demand_only,
        )

    def waiting_on(self, pool: Mapping[str, Any]) -> TrainingState:
        """A failover while recovering: the next offer's pool replaces the one that failed."""
        return replace(self, pool=dict(pool), phase=Phase.PROVISIONING)

    @property
    def resuming(self) -> bool:
        """The pool is back after the last recovery, but the work has not resumed on it yet (an endpoint that does
        not serve yet): a new try picks up from there."""
        return self.phase not in RECOVERING and bool(self.recoveries) and not self.recoveries[-1].resumed_at

    def back_on_pool(self, phase: Phase) -> TrainingState:
        """The pool waited for is ready; the work (``phase``) is about to resume on it."""
        return replace(self, phase=phase)

    def resumed(self, at: datetime, accelerators: int, phase: Phase = Phase.TRAINING) -> TrainingState:
        """The work restarts now (training, or the endpoint serves again): the last recovery gets its time to
        resume and the GPU-hours it cost (the wait, and the steps lost, redone)."""
        if not self.recoveries or self.recoveries[-1].resumed_at:
            return replace(self, phase=phase)
        last = self.recoveries[-1]
        lost_work_s = (last.steps_lost or 0) * (last.step_seconds or 0.0)
        waited_s = (at - datetime.fromisoformat(last.lost_at)).total_seconds()
        done = replace(
            last,
            resumed_at=at.isoformat(),
            resumed_on=where(self.pool),
            gpu_hours_lost=accelerators * (waited_s + lost_work_s) / 3600,
        )
        return replace(self, phase=phase, recoveries=(*self.recoveries[:-1], done))


def where(pool: Mapping[str, Any]) -> str:
    """``cloud/region/zone instance (capacity)`` of a ``PoolHandoff`` XCom dict, for log lines."""
    choice = pool["choice"]
    place = "/".join(str(choice.get(k) or "-") for k in ("cloud", "region", "availability_zone"))
    return f"{place} {choice['instance_type']} ({choice['capacity_type']})"


def recovery_line(recovery: Recovery, limit: int) -> str:
    """The one log line per recovery (steps lost only for training: serving loses requests, not steps)."""
    line = f"recovery {recovery.number}/{limit}: {recovery.during} lost on {recovery.where}: {recovery.why}"
    if recovery.during == Phase.TRAINING.value:
        line += f"; steps lost: {'unknown' if recovery.steps_lost is None else recovery.steps_lost}"
    if recovery.resumed_at:
        waited = (
            datetime.fromisoformat(recovery.resumed_at) - datetime.fromisoformat(recovery.lost_at)
        ).total_seconds()
        again = "resumed" if recovery.during == Phase.TRAINING.value else "serving again"
        line += (
            f"; {again} on {recovery.resumed_on} after {waited:.0f}s, "
            f"{recovery.gpu_hours_lost or 0.0:.4f} GPU-hours lost"
        )
    return line
