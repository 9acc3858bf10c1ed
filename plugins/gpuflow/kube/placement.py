"""Where a pod must run and what it must hold: node selector, tolerations and accelerator limits for a pool.

Each managed Kubernetes labels its pool nodes differently (EKS node groups, GKE node pools, AKS agent pools),
and spot nodes on GKE and AKS carry a taint of their own. Getting one of these wrong leaves a pod Pending
forever, so they are derived in one place from the pool alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuflow.core import accelerators
from gpuflow.core.catalog import CapacityType
from gpuflow.core.errors import RequestError
from gpuflow.core.nodepool import NodePoolSpec

POOL_LABELS = {
    "aws": "eks.amazonaws.com/nodegroup",
    "gcp": "cloud.google.com/gke-nodepool",
    "azure": "kubernetes.azure.com/agentpool",
}
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
# GKE's accelerator type for each canonical name (GKE "GPU platforms" documentation); TPUs use other labels.
# The taint each cloud puts on spot nodes itself (GKE spot VMs, AKS spot node pools); EKS adds none.
SPOT_TAINTS = {
    "gcp": ("cloud.google.com/gke-spot", "true"),
    "azure": ("kubernetes.azure.com/scalesetpriority", "spot"),
}
ACCELERATOR_TAINT_VALUE = "present"  # the value gpuflow taints its pools with (see NodePoolSpec.from_choice)


@dataclass(frozen=True, slots=True)
class Placement:
    """The scheduling half of a pod spec for one pool; ``pod_spec_fields`` and ``resources`` go into manifests."""

    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]
    resource: str
    accelerator_count: int

    @property
    def resources(self) -> dict[str, dict[str, str]]:
        """Accelerators are requested as limits only: Kubernetes sets the request equal for extended resources."""
        return {"limits": {self.resource: str(self.accelerator_count)}}

    def pod_spec_fields(self) -> dict[str, Any]:
        return {"nodeSelector": dict(self.node_selector), "tolerations": [dict(t) for t in self.tolerations]}


def _toleration(key: str, value: str) -> dict[str, str]:
    return {"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}


def placement(
    cloud: str, pool: str, accelerator: str, accelerator_count: int, capacity_type: CapacityType | str
) -> Placement:
    """The placement on pool ``pool`` of ``cloud`` whose nodes each hold ``accelerator_count`` ``accelerator``."""
    if cloud not in POOL_LABELS:
        raise RequestError("cloud", cloud, f"one of {', '.join(POOL_LABELS)}")
    if not pool:
        raise RequestError("pool", pool, "the node pool's name")
    if isinstance(accelerator_count, bool) or not isinstance(accelerator_count, int) or accelerator_count < 1:
        raise RequestError("accelerator_count", accelerator_count, "a whole number of accelerators, at least 1")
    try:
        capacity = CapacityType(capacity_type)
    except ValueError:
        raise RequestError("capacity_type", capacity_type, f"one of {', '.join(CapacityType)}") from None
    resource = accelerators.resource_name(accelerator)
    selector = {POOL_LABELS[cloud]: pool}
    if cloud == "gcp" and resource == accelerators.NVIDIA:
        selector[GKE_ACCELERATOR_LABEL] = _gke_accelerator(accelerator)
    tolerations = [_toleration(resource, ACCELERATOR_TAINT_VALUE)]
    if capacity is CapacityType.SPOT and cloud in SPOT_TAINTS:
        tolerations.append(_toleration(*SPOT_TAINTS[cloud]))
    return Placement(selector, tuple(tolerations), resource, accelerator_count)


def placement_for_pool(spec: NodePoolSpec) -> Placement:
    """The placement on a pool gpuflow created (the spec ``create_node_pool`` used)."""
    return placement(spec.cluster.cloud, spec.name, spec.accelerator, spec.accelerator_count, spec.capacity_type)


def _gke_accelerator(accelerator: str) -> str:
    name = accelerators.canonical_name(accelerator)
    if name not in accelerators.GKE_ACCELERATOR_TYPES:
        raise RequestError(
            "accelerator", accelerator, f"a GPU GKE offers: {', '.join(accelerators.GKE_ACCELERATOR_TYPES)}"
        )
    return accelerators.GKE_ACCELERATOR_TYPES[name]
