"""Node selectors, tolerations and accelerator limits per cloud, capacity type and accelerator."""

from __future__ import annotations

import pytest

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import RequestError
from gpuflow.core.nodepool import NodePoolSpec
from gpuflow.kube.placement import Placement, placement, placement_for_pool

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}


def test_eks_selects_the_node_group_and_tolerates_only_the_gpu_taint_even_on_spot() -> None:
    result = placement("aws", "gf-train-abc", "H100", 8, "spot")

    assert result.node_selector == {"eks.amazonaws.com/nodegroup": "gf-train-abc"}
    assert result.tolerations == (GPU_TOLERATION,)
    assert result.resources == {"limits": {"nvidia.com/gpu": "8"}}


def test_gke_selects_pool_and_accelerator_type() -> None:
    result = placement("gcp", "gf-pool", "L4", 1, "on-demand")

    assert result.node_selector == {
        "cloud.google.com/gke-nodepool": "gf-pool",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
    }
    assert result.tolerations == (GPU_TOLERATION,)


@pytest.mark.parametrize(
    ("accelerator", "gke_type"),
    [
        ("H100", "nvidia-h100-80gb"),
        ("A100-80GB", "nvidia-a100-80gb"),
        ("T4", "nvidia-tesla-t4"),
        ("a100", "nvidia-tesla-a100"),
    ],
)
def test_gke_accelerator_label_uses_gke_names(accelerator: str, gke_type: str) -> None:
    assert (
        placement("gcp", "p", accelerator, 1, "on-demand").node_selector["cloud.google.com/gke-accelerator"] == gke_type
    )


def test_gke_spot_tolerates_the_gke_spot_taint() -> None:
    result = placement("gcp", "gf-pool", "H100", 8, "spot")

    assert result.tolerations[1] == {
        "key": "cloud.google.com/gke-spot",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    }


def test_aks_selects_the_agent_pool_and_tolerates_the_spot_scale_set_taint() -> None:
    result = placement("azure", "gfab12cd34ef", "A100-80GB", 4, "spot")

    assert result.node_selector == {"kubernetes.azure.com/agentpool": "gfab12cd34ef"}
    assert result.tolerations == (
        GPU_TOLERATION,
        {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    )


def test_on_demand_aks_tolerates_only_the_gpu_taint() -> None:
    assert placement("azure", "gfpool", "T4", 1, "on-demand").tolerations == (GPU_TOLERATION,)


@pytest.mark.parametrize(
    ("cloud", "accelerator", "resource"),
    [
        ("aws", "Trainium2", "aws.amazon.com/neuron"),
        ("azure", "MI300X", "amd.com/gpu"),
        ("gcp", "tpu-v5p-8", "google.com/tpu"),
    ],
)
def test_non_nvidia_accelerators_use_their_resource_and_taint(cloud: str, accelerator: str, resource: str) -> None:
    result = placement(cloud, "pool", accelerator, 4, "on-demand")

    assert result.resources == {"limits": {resource: "4"}}
    assert result.tolerations[0]["key"] == resource
    assert "cloud.google.com/gke-accelerator" not in result.node_selector


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("oci", "p", "H100", 1, "spot"), "cloud"),
        (("aws", "", "H100", 1, "spot"), "pool"),
        (("aws", "p", "H100", 0, "spot"), "accelerator_count"),
        (("aws", "p", "H100", True, "spot"), "accelerator_count"),
        (("aws", "p", "H100", 1, "preemptible"), "capacity_type"),
        (("gcp", "p", "A10G", 1, "spot"), "accelerator"),
        (("aws", "p", "tpu-v5p-8", 1, "spot"), "accelerator"),
    ],
)
def test_invalid_input_names_the_field(args: tuple[str, str, str, int, str], field: str) -> None:
    with pytest.raises(RequestError) as error:
        placement(*args)

    assert error.value.field == field


def test_placement_for_pool_follows_the_spec_gpuflow_created() -> None:
    cluster = Cluster("gcp", "us-central1", "gpu-cluster", "gcp_default")
    choice = {
        "cloud": "gcp",
        "region": "us-central1",
        "availability_zone": "us-central1-a",
        "instance_type": "g2-standard-24",
        "capacity_type": "spot",
        "accelerator": "L4",
        "accelerator_count": 2,
        "nodes": 1,
    }
    spec = NodePoolSpec.from_choice(choice, cluster, dag_id="gpu_train_and_serve", run_id="manual__1")

    result = placement_for_pool(spec)

    assert result == Placement(
        {"cloud.google.com/gke-nodepool": spec.name, "cloud.google.com/gke-accelerator": "nvidia-l4"},
        (
            spec.taints[0].to_dict() | {"operator": "Equal"},
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        ),
        "nvidia.com/gpu",
        2,
    )
