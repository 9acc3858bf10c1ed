"""Cloud-agnostic node-pool lifecycle: create, become ready (nodes join), fail, get preempted, resize, delete.

The wire modules (eks, gke, aks) translate requests into `Pool`s and states back into each cloud's words;
everything that takes time or can fail happens here, once, driven by the scenario. Nodes join and leave
the emulated Kubernetes cluster through the `Emulator` node interface, so a deleted pool's pods fail the
way they do on a real node loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gpuflow_emulator.clouds import machines
from gpuflow_emulator.clouds.scenarios import ASYNC, Decision, Fault, Scenario, Target
from gpuflow_emulator.emulator import Emulator

log = logging.getLogger(__name__)


GIB = 2**30  # EKS diskSize is in GiB
GB = 10**9  # GKE diskSizeGb and AKS osDiskSizeGB are in GB


class PoolState(StrEnum):
    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DELETING = "DELETING"
    GONE = "GONE"


class CloudFault(Exception):
    """A failure a cloud API answers with; each wire module renders it in its own error body."""

    def __init__(self, fault: Fault, message: str = "") -> None:
        super().__init__(message or fault.message or fault.kind)
        self.fault = fault
        self.message = message or fault.message or ""


@dataclass(frozen=True)
class PoolError:
    kind: str
    code: str
    message: str
    status: str | None = None


@dataclass
class Pool:
    """One node pool as the emulator holds it; `request` keeps the cloud-specific fields to echo back.

    Without an explicit accelerator (GKE's `accelerators` config) the instance type's own comes from the
    emulator's table (`machines`), with the Kubernetes resource its nodes advertise it as.
    """

    cloud: str
    cluster: str
    name: str
    region: str
    zones: tuple[str, ...]
    instance_type: str
    node_count: int
    spot: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    disk_bytes: int = 0  # each node's boot disk, from the request or the cloud's default (0: not accounted)
    accelerator: str | None = None
    accelerators_per_node: int = 0
    resource: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    state: PoolState = PoolState.CREATING
    error: PoolError | None = None
    nodes: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    modified_at: float = field(default_factory=time.time)
    serial: int = 0

    def __post_init__(self) -> None:
        if self.accelerator is None and (shape := machines.shape(self.cloud, self.instance_type)):
            self.accelerator, self.accelerators_per_node, self.resource = shape.accelerator, shape.count, shape.resource

    @property
    def target(self) -> Target:
        return Target(
            cloud=self.cloud,
            region=self.region,
            zones=self.zones,
            instance_type=self.instance_type,
            spot=self.spot,
            pool=self.name,
            nodes=self.node_count,
            accelerators=self.node_count * self.accelerators_per_node,
        )

    def allocatable(self) -> dict[str, str]:
        """What each node advertises: its accelerators and its boot disk as ``ephemeral-storage`` (bytes)."""
        resources = {"ephemeral-storage": str(self.disk_bytes)} if self.disk_bytes else {}
        if self.accelerator and self.resource and self.accelerators_per_node:
            resources[self.resource] = str(self.accelerators_per_node)
        return resources

    def set_state(self, state: PoolState, error: PoolError | None = None) -> None:
        self.state, self.error, self.modified_at = state, error, time.time()

    def to_json(self) -> dict[str, Any]:
        """The admin view: enough to count leaked resources and see why a pool failed."""
        return {
            "cloud": self.cloud,
            "cluster": self.cluster,
            "name": self.name,
            "region": self.region,
            "zones": list(self.zones),
            "instance_type": self.instance_type,
            "spot": self.spot,
            "node_count": self.node_count,
            "state": self.state.value,
            "error": vars(self.error) if self.error else None,
            "labels": self.labels,
            "nodes": list(self.nodes),
        }


class Flavor(Protocol):
    """What differs between clouds once a pool exists: node names, labels, taints, words for failures."""

    cloud: str

    def node_name(self, pool: Pool, index: int, zone: str) -> str: ...

    def node_labels(self, pool: Pool, zone: str) -> dict[str, str]: ...

    def node_taints(self, pool: Pool) -> list[dict[str, str]]: ...

    def ships_device_plugin(self, pool: Pool) -> bool:
        """Whether the pool's node image runs its accelerators' device plugin itself; if not, its nodes
        advertise them only once a device plugin pod runs Ready there (`gpuflow_emulator.device_plugins`)."""
        ...

    def failure(self, pool: Pool, fault: Fault) -> PoolError: ...

    def preemption(self, pool: Pool, node: str) -> tuple[str, str]:
        """(event reason, message) recorded on a preempted spot node before it goes."""
        ...


POD_PREEMPTED_REASON = "Terminated"
POD_PREEMPTED_MESSAGE = "Pod was terminated in response to imminent node shutdown."


@dataclass
class Operation:
    """A long-running operation over one pool (GKE operations, Azure async operations)."""

    id: str
    kind: str  # create | delete | resize | update
    pool: Pool
    started_at: float = field(default_factory=time.time)
    target_nodes: int = 0

    @property
    def done(self) -> bool:
        state = self.pool.state
        if self.kind == "delete":
            return state is PoolState.GONE
        if self.kind == "resize":
            return state is not PoolState.READY or len(self.pool.nodes) == self.target_nodes
        return state is not PoolState.CREATING

    @property
    def error(self) -> PoolError | None:
        return self.pool.error if self.kind != "delete" else None


class NodePools:
    """Every pool of every cloud, and the tasks that move them through their states."""

    def __init__(self, emulator: Emulator, scenario: Scenario) -> None:
        self.emulator = emulator
        self.scenario = scenario
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._flavors: dict[str, Flavor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.operations: dict[str, Operation] = {}
        self._serial = 0

    def register(self, flavor: Flavor) -> None:
        self._flavors[flavor.cloud] = flavor

    def all(self) -> list[Pool]:
        return list(self._pools.values())

    def list(self, cloud: str, cluster: str) -> list[Pool]:
        return [p for (c, k, _), p in self._pools.items() if (c, k) == (cloud, cluster)]

    def get(self, cloud: str, cluster: str, name: str) -> Pool | None:
        return self._pools.get((cloud, cluster, name))

    def track(self, kind: str, pool: Pool) -> Operation:
        """A new operation watching `pool` (a repeated create of an existing pool watches it become ready)."""
        operation = Operation(f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}", kind, pool)
        operation.target_nodes = pool.node_count
        self.operations[operation.id] = operation
        return operation

    def create(self, pool: Pool) -> Operation:
        """Accept the pool or raise CloudFault (a sync fault); what happens next runs in the background."""
        live = [p.target for p in self._pools.values() if p.state in (PoolState.CREATING, PoolState.READY)]
        decision = self.scenario.decide(pool.target, live)
        flavor = self._flavors[pool.cloud]
        if decision.fault and decision.fault.when != ASYNC:
            error = flavor.failure(pool, decision.fault)
            raise CloudFault(dataclasses.replace(decision.fault, code=error.code), error.message)
        self._serial += 1
        pool.serial = self._serial
        self._pools[(pool.cloud, pool.cluster, pool.name)] = pool
        log.info(
            "%s pool %s/%s accepted (%s x%d)", pool.cloud, pool.cluster, pool.name, pool.instance_type, pool.node_count
        )
        self._spawn(self._provision(pool, flavor, decision.fault, decision))
        return self.track("create", pool)

    async def _provision(self, pool: Pool, flavor: Flavor, fault: Fault | None, decision: Decision) -> None:
        await asyncio.sleep(decision.provisioning_seconds)
        if pool.state is not PoolState.CREATING:
            return
        if fault is not None:
            pool.set_state(PoolState.FAILED, flavor.failure(pool, fault))
            log.info("%s pool %s failed: %s", pool.cloud, pool.name, pool.error)
            return
        if decision.never_ready:
            log.info("%s pool %s: nodes never become ready (scenario)", pool.cloud, pool.name)
            return
        self._add_nodes(pool, flavor, pool.node_count)
        pool.set_state(PoolState.READY)
        if decision.preempt_after_seconds is not None:
            self._spawn(self._preempt(pool, flavor, decision.preempt_after_seconds))

    def _add_nodes(self, pool: Pool, flavor: Flavor, count: int) -> None:
        for index in range(len(pool.nodes), count):
            zone = pool.zones[index % len(pool.zones)]
            name = flavor.node_name(pool, index, zone)
            labels = {
                "node.kubernetes.io/instance-type": pool.instance_type,
                "topology.kubernetes.io/region": pool.region,
                **flavor.node_labels(pool, zone),
                **pool.labels,
            }
            taints = [*flavor.node_taints(pool), *pool.taints]
            allocatable, devices = pool.allocatable(), {}
            if pool.resource in allocatable and not flavor.ships_device_plugin(pool):
                devices[pool.resource] = allocatable.pop(pool.resource)
            self.emulator.add_node(pool.cluster, name, labels, taints, allocatable, devices)
            pool.nodes.append(name)

    async def _remove_nodes(self, pool: Pool, keep: int, reason: str, message: str) -> None:
        while len(pool.nodes) > keep:
            node = pool.nodes.pop()
            with contextlib.suppress(Exception):
                await self.emulator.remove_node(pool.cluster, node, reason, message)

    async def _preempt(self, pool: Pool, flavor: Flavor, after: float) -> None:
        await asyncio.sleep(after)
        for node in list(pool.nodes):
            event_reason, event_message = flavor.preemption(pool, node)
            self.emulator.record_node_event(pool.cluster, node, "Warning", event_reason, event_message)
            pool.nodes.remove(node)
            await self.emulator.remove_node(pool.cluster, node, POD_PREEMPTED_REASON, POD_PREEMPTED_MESSAGE)
            log.info("%s pool %s: spot node %s preempted", pool.cloud, pool.name, node)

    def resize(self, pool: Pool, count: int) -> Operation:
        """Scale a ready pool: extra nodes join after the provisioning delay, surplus nodes go at once."""
        pool.node_count = count
        pool.modified_at = time.time()
        operation = self.track("resize", pool)
        self._spawn(self._resize(pool, count))
        return operation

    async def _resize(self, pool: Pool, count: int) -> None:
        flavor = self._flavors[pool.cloud]
        if count < len(pool.nodes):
            await self._remove_nodes(pool, count, "NodeLost", f"node pool {pool.name} scaled down to {count}")
            return
        await asyncio.sleep(self.scenario.decide(pool.target, []).provisioning_seconds)
        if pool.state is PoolState.READY:
            self._add_nodes(pool, flavor, count)

    def relabel(self, pool: Pool, labels: dict[str, str]) -> Operation:
        """Replace the pool's own labels; its nodes change with it, in place (no node is recreated)."""
        removed = [key for key in pool.labels if key not in labels]
        pool.labels = dict(labels)
        pool.modified_at = time.time()
        for node in pool.nodes:
            self.emulator.relabel_node(pool.cluster, node, pool.labels, removed)
        log.info("%s pool %s/%s relabelled: %s", pool.cloud, pool.cluster, pool.name, pool.labels)
        return self.track("update", pool)

    def delete(self, pool: Pool) -> Operation:
        """Start deleting: nodes go at once (their pods fail), the pool itself after the deleting delay."""
        operation = self.track("delete", pool)
        if pool.state is not PoolState.DELETING:
            pool.set_state(PoolState.DELETING, pool.error)
            self._spawn(self._delete(pool))
        return operation

    async def _delete(self, pool: Pool) -> None:
        await self._remove_nodes(pool, 0, "NodeLost", f"node pool {pool.name} was deleted")
        await asyncio.sleep(self.scenario.decide(pool.target, []).deleting_seconds)
        pool.set_state(PoolState.GONE)
        self._pools.pop((pool.cloud, pool.cluster, pool.name), None)
        log.info("%s pool %s/%s deleted", pool.cloud, pool.cluster, pool.name)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
