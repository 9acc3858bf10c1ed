"""The protocol every cloud backend implements, and the function that builds one for a cluster.

A backend makes one SDK call per method and decides nothing: failover, retries and blocking live in
``gpuflow.core.failover``. Create is get-or-create and delete of a missing pool succeeds, so every
method can be retried. SDKs are imported inside each backend module, so a missing SDK breaks only its
own cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from gpuflow.core.clouds import traits
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus


@runtime_checkable
class CloudBackend(Protocol):
    """Node pools of one cluster on one cloud's managed Kubernetes."""

    cluster: Cluster

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        """Request the pool and return at once; an existing pool of the same name counts as created."""
        ...

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        """The pool's state; a pool that does not exist is ``GONE``, not an error."""
        ...

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        """Request deletion; deleting a pool that does not exist succeeds."""
        ...

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        """Pools of the cluster whose labels include all of ``labels``."""
        ...

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        """Add or update ``labels`` on the pool (and so on its nodes); its other labels stay as they are."""
        ...

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        """Ask for ``nodes`` nodes in the pool (new ones join after the cloud's provisioning delay)."""
        ...

    def kube_config(self) -> dict[str, Any]:
        """A kubeconfig (as a dict) that reaches the cluster's Kubernetes API."""
        ...

    def classify(self, exc: BaseException) -> CloudError:
        """Our reading (kind, scope) of an exception this backend's SDK raised."""
        ...


def backend_class(cloud: str) -> Callable[..., CloudBackend]:
    """The backend class named by the cloud's ``CloudTraits.backend``, imported now (and its SDK with it)."""
    module, _, name = traits(cloud).backend.partition(":")
    factory: Callable[..., CloudBackend] = getattr(import_module(module), name)
    return factory


def backend_for(cluster: Cluster) -> CloudBackend:
    """The backend for a cluster, built from the cluster's Airflow connection."""
    return backend_class(cluster.cloud)(cluster)
