"""Fake cloud backends for gpuflow's ``Provisioner``: a create is refused with the cloud's own capacity error when
the offer's capacity is not there at the simulated tick, and accepted otherwise.

Each cloud refuses with the code its real backend would read from the SDK (EC2 ``InsufficientInstanceCapacity``,
Compute Engine ``ZONE_RESOURCE_POOL_EXHAUSTED``, Azure ``SkuNotAvailable``, which Azure's spot error reference gives
for "not enough Azure Spot Virtual Machine capacity in this location"), classified by that backend's own table, so
the failover policy sees what it would see from the cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.cost.world import World
from gpuflow.clouds import aws, azure, gcp
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus

CAPACITY_CODES = {
    "aws": ("InsufficientInstanceCapacity", aws.CODES),
    "gcp": ("ZONE_RESOURCE_POOL_EXHAUSTED", gcp.GCE_CODES),
    "azure": ("SkuNotAvailable", azure.CODES),
}
NEVER_READY = "NodesNeverReady"  # the code gpuflow's node-pool trigger gives a pool not ready in time


def capacity_error(cloud: str, resource: str) -> CloudError:
    """What the cloud says when its spot capacity is not there (at a create, or to a pool still starting)."""
    code, table = CAPACITY_CODES[cloud]
    kind, scope = table[code]
    return CloudError(cloud=cloud, code=code, kind=kind, scope=scope, message="no capacity", resource=resource)


def never_ready(cloud: str, resource: str, waited_s: float) -> CloudError:
    """The node-pool trigger's verdict on a pool whose lost node did not come back within the wait."""
    message = f"node pool {resource} was not ready after {waited_s:.0f}s"
    return CloudError(
        cloud=cloud, code=NEVER_READY, kind=ErrorKind.CAPACITY, scope=Scope.OFFER, message=message, resource=resource
    )


@dataclass
class TraceCloud:
    """A ``CloudBackend`` for one cluster, answering creates from the world's availability at ``tick()``."""

    cluster: Cluster
    world: World
    tick: Callable[[], int]

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        key = (self.cluster.cloud, self.cluster.region, spec.zone, spec.instance_type, spec.capacity_type)
        if not self.world.offer(key).availability.is_up(self.tick()):
            raise capacity_error(self.cluster.cloud, spec.name)
        return spec.ref

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        """Deleting always succeeds: the pool's cost stops where ``pools.hold`` ended it."""

    # The provisioner calls only the two above; the rest of the protocol has nothing to simulate.
    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        raise NotImplementedError

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        raise NotImplementedError

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        raise NotImplementedError

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        raise NotImplementedError

    def kube_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def classify(self, exc: BaseException) -> CloudError:
        raise NotImplementedError
