"""What a node pool is to the emulator, and what differs between clouds once one exists (`Flavor`).

The wire modules (eks, gke, aks) build `Pool`s from requests and render them back in each cloud's words; the engine
(`nodepools`) moves them through their states. Each cloud's facts sit on its `Flavor`, its spot interruption
included (`Interruption`: how long the notice lasts, what happens to the pods, what the cloud does afterwards).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from gpuflow_emulator.clouds import machines
from gpuflow_emulator.clouds.scenarios import Fault, Target

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
    nodes: list[str] = field(default_factory=list)  # its Nodes in the cluster, in the order they joined
    node_zones: dict[str, str] = field(default_factory=dict)  # every node it launched: the zone it runs in
    down: set[str] = field(default_factory=set)  # spot nodes preempted: under notice, or (GKE) awaiting their VM
    granted: int = 0  # replacements of preempted nodes that spot capacity allows and that are being provisioned
    created_at: float = field(default_factory=time.time)
    modified_at: float = field(default_factory=time.time)
    serial: int = 0

    def __post_init__(self) -> None:
        if self.accelerator is None and (shape := machines.shape(self.cloud, self.instance_type)):
            self.accelerator, self.accelerators_per_node, self.resource = shape.accelerator, shape.count, shape.resource

    @property
    def held(self) -> int:
        """Spot capacity the pool holds: nodes not preempted, and replacements on their way."""
        return len(self.nodes) - len(self.down) + self.granted

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


class AfterPreemption(StrEnum):
    """What a cloud does once a preempted spot node's machine is gone."""

    REPLACE = "replace"  # the Auto Scaling group launches a new instance (a new node name) when capacity allows
    RECREATE = "recreate"  # the managed instance group recreates the VM under the same name when capacity allows
    SHRINK = "shrink"  # the VM is deleted and the pool's count goes down by one; nothing replaces it


@dataclass(frozen=True)
class Interruption:
    """How a cloud takes a spot node back, in cloud seconds: the notice, then the machine's end.

    With `shutdown_windows` the kubelet's graceful node shutdown stops the pods (ordinary pods get the first window,
    critical ones the second) and the Node stays, NotReady; without, the node is cordoned and drained on the notice
    and removed at its end.
    """

    notice_seconds: float
    after: AfterPreemption
    source: str  # the cloud's page these figures come from
    shutdown_windows: tuple[float, float] | None = None


class Flavor(Protocol):
    """What differs between clouds once a pool exists: node names, labels, taints, words for failures, and how a
    spot node is taken back."""

    cloud: str
    interruption: Interruption

    def node_name(self, pool: Pool, index: int, zone: str) -> str: ...

    def node_labels(self, pool: Pool, zone: str) -> dict[str, str]: ...

    def node_taints(self, pool: Pool) -> list[dict[str, str]]: ...

    def ships_device_plugin(self, pool: Pool) -> bool:
        """Whether the pool's node image runs its accelerators' device plugin itself; if not, its nodes
        advertise them only once a device plugin pod runs Ready there (`gpuflow_emulator.device_plugins`)."""
        ...

    def failure(self, pool: Pool, fault: Fault) -> PoolError: ...

    def preemption(self, pool: Pool, node: str, ends_at: datetime) -> tuple[str, str]:
        """(reason, message) of the Warning event recorded on a spot node when its interruption notice comes; the
        machine ends at `ends_at`."""
        ...


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
