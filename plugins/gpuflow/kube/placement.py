"""Where a pod must run and what it must hold: node selector, tolerations and accelerator limits for a pool.

Each managed Kubernetes labels its pool nodes differently (EKS node groups, GKE node pools, AKS agent pools),
and spot nodes on GKE and AKS carry a taint of their own. Getting one of these wrong leaves a pod Pending
forever, so they are derived in one place from the pool alone and the cloud's ``CloudTraits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuflow.core import accelerators
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import CloudTraits, traits
from gpuflow.core.errors import RequestError
from gpuflow.core.nodepool import NodePoolSpec

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
    facts = traits(cloud)
    if not pool:
        raise RequestError("pool", pool, "the node pool's name")
    if isinstance(accelerator_count, bool) or not isinstance(accelerator_count, int) or accelerator_count < 1:
        raise RequestError("accelerator_count", accelerator_count, "a whole number of accelerators, at least 1")
    try:
        capacity = CapacityType(capacity_type)
    except ValueError:
        raise RequestError("capacity_type", capacity_type, f"one of {', '.join(CapacityType)}") from None
    resource = accelerators.resource_name(accelerator)
    if resource not in facts.accelerator_resources:
        raise RequestError(
            "accelerator", accelerator, f"an accelerator {facts.kubernetes} nodes offer: {_offered(facts)}"
        )
    selector = {facts.pool_label: pool}
    if facts.accelerator_label and resource == accelerators.NVIDIA:
        selector[facts.accelerator_label] = _accelerator_label_value(facts, accelerator)
    tolerations = [_toleration(resource, ACCELERATOR_TAINT_VALUE)]
    if capacity is CapacityType.SPOT and facts.spot_taint:
        tolerations.append(_toleration(*facts.spot_taint))
    return Placement(selector, tuple(tolerations), resource, accelerator_count)


def placement_for_pool(spec: NodePoolSpec) -> Placement:
    """The placement on a pool gpuflow created (the spec ``create_node_pool`` used)."""
    return placement(spec.cluster.cloud, spec.name, spec.accelerator, spec.accelerator_count, spec.capacity_type)


def _offered(facts: CloudTraits) -> str:
    return f"{', '.join(sorted(facts.accelerator_resources))} (no pod can land on a node without its resource)"


def _accelerator_label_value(facts: CloudTraits, accelerator: str) -> str:
    name = accelerators.canonical_name(accelerator)
    values = facts.accelerator_label_values
    if name not in values:
        raise RequestError("accelerator", accelerator, f"a GPU {facts.kubernetes} offers: {', '.join(values)}")
    return values[name]
