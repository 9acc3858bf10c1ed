"""A GPU node pool as gpuflow asks for it, independent of the cloud that will host it.

``NodePoolSpec.from_choice`` turns a plan's choice into everything a backend needs: the deterministic
name, the placement, the labels that mark ownership, the taint that keeps non-GPU pods off and the disk size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gpuflow.core import accelerators, disks, naming
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError

ACCELERATOR_LABEL = "gpuflow.io/accelerator"


class PoolState(StrEnum):
    """A node pool's lifecycle as the pipeline sees it, whatever the cloud's own vocabulary."""

    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DELETING = "DELETING"
    GONE = "GONE"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str = "NoSchedule"

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "effect": self.effect}


@dataclass(frozen=True, slots=True)
class NodePoolRef:
    """Enough to find a pool again, from any process: it travels through XCom and trigger kwargs."""

    cloud: str
    region: str
    cluster: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"cloud": self.cloud, "region": self.region, "cluster": self.cluster, "name": self.name}

    @property
    def path(self) -> str:
        """``cloud/cluster/name``: the pool's identity in the cost ledger (names are unique within a cluster)."""
        return f"{self.cloud}/{self.cluster}/{self.name}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodePoolRef:
        return cls(data["cloud"], data["region"], data["cluster"], data["name"])


@dataclass(frozen=True, slots=True)
class NodePoolStatus:
    """A pool as its cloud describes it; size and machine let the janitor say what a leaked pool costs."""

    ref: NodePoolRef
    state: PoolState
    ready_nodes: int = 0
    error: CloudError | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    instance_type: str = ""
    node_count: int = 0
    spot: bool = False


class Readiness(StrEnum):
    """Where a pool the cloud calls ready stands in Kubernetes."""

    READY = "READY"  # every planned node is Ready with the planned accelerators allocatable
    JOINING = "JOINING"  # nodes are missing or not Ready yet
    UNADVERTISED = "UNADVERTISED"  # every node is Ready but some advertise too few accelerators


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One node of a pool as Kubernetes reports it: its Ready condition, the accelerators it advertises, and
    whether it is cordoned (a drain for a spot interruption notice: it is about to go)."""

    name: str
    ready: bool
    allocatable: int
    unschedulable: bool = False


def readiness(nodes: Sequence[NodeReport], planned_nodes: int, per_node: int) -> Readiness:
    """Ready only when ``planned_nodes`` nodes are Ready in Kubernetes, each advertising ``per_node`` accelerators:
    a cloud reports a pool ready before a device plugin has made its accelerators schedulable. A cordoned node
    does not count: nothing new is placed there, and after a spot notice it is about to go."""
    if len(nodes) < planned_nodes or not all(node.ready and not node.unschedulable for node in nodes):
        return Readiness.JOINING
    if any(node.allocatable < per_node for node in nodes):
        return Readiness.UNADVERTISED
    return Readiness.READY


@dataclass(frozen=True, slots=True)
class NodePoolSpec:
    """Everything a backend needs to create one GPU node pool."""

    cluster: Cluster
    name: str
    zone: str | None
    instance_type: str
    accelerator: str
    accelerator_count: int
    nodes: int
    capacity_type: CapacityType
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    disk_gib: int  # each node's boot disk (``disks.disk_gib``): the images, the model and a checkpoint must fit

    @property
    def ref(self) -> NodePoolRef:
        return NodePoolRef(self.cluster.cloud, self.cluster.region, self.cluster.name, self.name)

    @property
    def resource_name(self) -> str:
        """The Kubernetes extended resource the pool's nodes offer (nvidia.com/gpu, google.com/tpu...)."""
        return accelerators.resource_name(self.accelerator)

    @classmethod
    def from_choice(
        cls,
        choice: Mapping[str, Any],
        cluster: Cluster,
        *,
        dag_id: str,
        run_id: str,
        expires_at_epoch: int | None = None,
    ) -> NodePoolSpec:
        """The pool for one plan choice (``Choice.to_dict()``) of one run; same inputs, same pool."""
        offer_key = "/".join(
            str(choice[k]) for k in ("cloud", "region", "availability_zone", "instance_type", "capacity_type")
        )
        labels = naming.ownership_labels(dag_id, run_id, expires_at_epoch)
        labels[ACCELERATOR_LABEL] = naming.label_value(choice["accelerator"])
        return cls(
            cluster=cluster,
            name=naming.pool_name(cluster.cloud, dag_id, run_id, offer_key),
            zone=choice.get("availability_zone"),
            instance_type=choice["instance_type"],
            accelerator=choice["accelerator"],
            accelerator_count=int(choice["accelerator_count"]),
            nodes=int(choice["nodes"]),
            capacity_type=CapacityType(choice["capacity_type"]),
            labels=labels,
            taints=(Taint(accelerators.resource_name(choice["accelerator"]), "present"),),
            disk_gib=disks.disk_gib(cluster.cloud, cluster.settings, _accelerator_memory_gib(choice)),
        )


def _accelerator_memory_gib(choice: Mapping[str, Any]) -> float | None:
    """The memory of all the accelerators of one node of ``choice``; None when the catalog does not say."""
    per_accelerator = choice.get("memory_gib")
    return None if per_accelerator is None else float(per_accelerator) * int(choice["accelerator_count"])
