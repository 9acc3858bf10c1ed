"""Provision a node pool on the first offer of a plan that a cloud accepts, failing over down the list.

The policy (what to retry, block or give up on) is ``gpuflow.core.failover``; this module applies it to
real backends, records blocks in the shared failover memory and logs one line per attempt. Both halves
of provisioning use it: the setup task (a synchronous refusal) and the waiting task (a pool accepted,
then failed: it is deleted first, and failover stops if that deletion fails).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.clouds.calls import retrying
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clusters import Cluster, Clusters
from gpuflow.core.errors import CloudError, ErrorKind, GpuflowError, Scope
from gpuflow.core.failover import Action, Target, decide
from gpuflow.core.nodepool import NodePoolSpec
from gpuflow.core.request import Block
from gpuflow.state.store import BlockStore

log = logging.getLogger(__name__)


class ProvisioningFailed(GpuflowError):
    """No offer of the plan could be provisioned, or a failure that failover cannot help happened."""


class ProvisioningStopped(ProvisioningFailed):
    """A cloud's answer that no retry or other offer can change (an invalid request, a misconfigured
    cluster): the task must fail without its retries, which would only walk the plan's other offers."""


@dataclass(frozen=True, slots=True)
class Run:
    """The run that owns what is provisioned: every name and label derives from it."""

    dag_id: str
    run_id: str
    expires_at_epoch: int | None = None


@dataclass
class Provisioner:
    """Tries a plan's options in order against the clouds, with one failover policy for all of them."""

    clusters: Clusters
    memory: BlockStore
    run: Run
    backends: Callable[[Cluster], CloudBackend] = backend_for
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    blocks: list[Block] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

    def spec_for(self, choice: Mapping[str, Any]) -> NodePoolSpec:
        cluster = self.clusters.for_region(choice["cloud"], choice["region"])
        return NodePoolSpec.from_choice(
            choice,
            cluster,
            dag_id=self.run.dag_id,
            run_id=self.run.run_id,
            expires_at_epoch=self.run.expires_at_epoch,
        )

    def create_first(
        self, choices: Sequence[Mapping[str, Any]], candidates: Iterable[int] | None = None
    ) -> tuple[NodePoolSpec, int]:
        """Create a pool on the first option that is accepted, trying only the indices ``candidates`` (in their
        order) when given; returns its spec and its index in ``choices``, so a failover past the options a
        recovery rules out still names the plan's own option."""
        indices = list(range(len(choices)) if candidates is None else candidates)
        for index in indices:
            choice = choices[index]
            if self._blocked(choice):
                self._log(choice, "skipped", "blocked by an earlier failure in this run", 0.0)
                continue
            spec = self.spec_for(choice)
            if self._create(spec, choice):
                return spec, index
        tried = "; ".join(self.attempts) or "no option was left to try"
        raise ProvisioningFailed(f"no offer could be provisioned ({len(indices)} options): {tried}")

    def abandon(self, spec: NodePoolSpec, choice: Mapping[str, Any], error: CloudError) -> None:
        """An accepted pool failed later (async stockout, never ready): delete it and remember why."""
        backend = self.backends(spec.cluster)
        try:
            retrying(partial(backend.delete_node_pool, spec.ref), what=f"deleting pool {spec.name}", sleep=self.sleep)
        except CloudError as exc:
            raise ProvisioningFailed(
                f"failover stopped: pool {spec.name} failed ({error.code}) and deleting it failed too: {exc}"
            ) from exc
        decision = decide(error, _target(choice), attempt=1, now=self.clock(), jitter=self.rng.random())
        self._remember(decision.block, decision.shared)
        self._log(choice, "failed after acceptance", f"{error.code}: {error.message}", 0.0)
        if decision.action is Action.STOP:  # e.g. nodes that cannot join: every other offer would fail alike
            raise ProvisioningStopped(f"pool {spec.name} on {choice['cloud']} failed: {decision.reason}")

    def recall(self) -> None:
        """Take on the shared memory's active blocks: a run provisioning again mid-way (after a preemption) skips
        what any run found short since, its own earlier failures included."""
        self.blocks.extend(self.memory.active(self.clock()))

    def note(self, choice: Mapping[str, Any], error: CloudError) -> None:
        """Remember what ``error`` says about the offer of ``choice`` (a pool kept, not abandoned)."""
        decision = decide(error, _target(choice), attempt=1, now=self.clock(), jitter=self.rng.random())
        self._remember(decision.block, decision.shared)

    def _create(self, spec: NodePoolSpec, choice: Mapping[str, Any]) -> bool:
        backend = self.backends(spec.cluster)
        attempt = 1
        while True:
            started = time.monotonic()
            try:
                backend.create_node_pool(spec)
            except CloudError as error:
                decision = decide(error, _target(choice), attempt=attempt, now=self.clock(), jitter=self.rng.random())
                self._log(choice, decision.action.value, decision.reason, time.monotonic() - started)
                self._remember(decision.block, decision.shared)
                if decision.action is Action.STOP:
                    raise ProvisioningStopped(f"{choice['cloud']} refused the request: {decision.reason}") from error
                if decision.action is Action.NEXT:
                    return False
                self.sleep(decision.delay_s)
                attempt += 1
                continue
            self._log(choice, "accepted", f"node pool {spec.name} requested", time.monotonic() - started)
            return True

    def _blocked(self, choice: Mapping[str, Any]) -> bool:
        t = _target(choice)
        now = self.clock()
        return any(
            b.is_active(now) and b.covers(t.cloud, t.region, t.zone, t.instance_type, t.capacity_type, t.accelerator)
            for b in self.blocks
        )

    def _remember(self, block: Block | None, shared: bool) -> None:
        if block is None:
            return
        self.blocks.append(block)
        if shared:
            self.memory.record([block], recorded_by=f"{self.run.dag_id}/{self.run.run_id}", now=self.clock())

    def _log(self, choice: Mapping[str, Any], outcome: str, reason: str, elapsed: float) -> None:
        where = "/".join(str(choice[k] or "-") for k in ("cloud", "region", "availability_zone"))
        line = f"{where} {choice['instance_type']} {choice['capacity_type']}: {outcome} ({reason}) in {elapsed:.1f}s"
        self.attempts.append(line)
        log.info("attempt %d: %s", len(self.attempts), line)


def node_lost(choice: Mapping[str, Any], why: str) -> CloudError:
    """A pool of ``choice`` lost a node (a spot preemption): a capacity signal about that offer, for every run."""
    return CloudError(cloud=choice["cloud"], code="NodeLost", kind=ErrorKind.CAPACITY, scope=Scope.OFFER, message=why)


def _target(choice: Mapping[str, Any]) -> Target:
    return Target(
        cloud=choice["cloud"],
        region=choice["region"],
        zone=choice.get("availability_zone"),
        instance_type=choice["instance_type"],
        capacity_type=CapacityType(choice["capacity_type"]),
        accelerator=choice["accelerator"],
    )
