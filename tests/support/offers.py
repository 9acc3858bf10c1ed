"""One small GPU offer per cloud on the emulator's shipped clusters, as a plan's choice names it.

Tests that request pools through the backends directly (not through a plan) build them from here, so every such
test asks the clouds for the same, known-good shapes.
"""

from __future__ import annotations

from typing import Any

from gpuflow.core.clusters import Cluster, load_clusters
from gpuflow.core.nodepool import NodePoolSpec

OFFERS: dict[str, dict[str, Any]] = {
    "aws": {"region": "us-east-1", "availability_zone": "use1-az1", "instance_type": "g6.xlarge"},
    "gcp": {"region": "us-central1", "availability_zone": "us-central1-a", "instance_type": "g2-standard-4"},
    "azure": {"region": "eastus", "availability_zone": None, "instance_type": "Standard_NC4as_T4_v3"},
}


def one_gpu_choice(cloud: str) -> dict[str, Any]:
    """A 1-node, 1-GPU on-demand choice on ``cloud`` (L4, or T4 on Azure), shaped like a plan's option."""
    return {
        "cloud": cloud,
        **OFFERS[cloud],
        "accelerator": "T4" if cloud == "azure" else "L4",
        "accelerator_count": 1,
        "nodes": 1,
        "capacity_type": "on-demand",
    }


def cluster_of(cloud: str) -> Cluster:
    """The shipped cluster in the region of ``cloud``'s offer."""
    return load_clusters().for_region(cloud, OFFERS[cloud]["region"])


def one_gpu_pool_spec(cloud: str, *, dag_id: str, run_id: str) -> NodePoolSpec:
    """The node pool ``one_gpu_choice(cloud)`` asks for, labelled as a pool of that run."""
    return NodePoolSpec.from_choice(one_gpu_choice(cloud), cluster_of(cloud), dag_id=dag_id, run_id=run_id)
