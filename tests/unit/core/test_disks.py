"""The node disk size: sized from the node's accelerator memory, a cluster's override when valid, within what
each cloud accepts, and GiB in GB for GKE and AKS."""

from __future__ import annotations

import pytest

from gpuflow.core import disks
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import RequestError
from gpuflow.core.nodepool import NodePoolSpec


def test_a_small_node_gets_the_floor() -> None:
    assert disks.disk_gib("aws", {}, 16.0) == disks.FLOOR_GIB  # one T4
    assert disks.disk_gib("aws", {}, None) == disks.FLOOR_GIB  # the catalog does not say


def test_a_big_node_gets_room_for_the_images_the_model_and_a_checkpoint() -> None:
    memory = 8 * 80.0  # p4de.24xlarge: 8 x A100 80 GB
    size = disks.disk_gib("aws", {}, memory)
    assert size == disks.SERVING_IMAGE_GIB + disks.TRAINING_IMAGE_GIB + 2 * 640
    assert size > 2 * memory  # the served model's cache and a staged checkpoint both fit beside the images


def test_the_size_never_exceeds_what_the_cloud_accepts() -> None:
    memory = 8 * 141.0  # ND96isr_H200_v5: 8 x H200
    assert disks.disk_gib("azure", {}, memory) == traits("azure").max_disk_gib
    assert disks.gib_in_gb(traits("azure").max_disk_gib) <= 2048  # AKS's osDiskSizeGB limit, in GB


def test_a_cluster_override_wins() -> None:
    assert disks.disk_gib("gcp", {"disk_gib": 500}, 8 * 80.0) == 500


@pytest.mark.parametrize("value", [20, "200", 99.5, True, 5000])
def test_a_bad_override_names_the_field_the_value_and_the_fix(value: object) -> None:
    with pytest.raises(RequestError) as error:
        disks.disk_gib("azure", {"disk_gib": value}, 16.0)
    assert error.value.field == "settings.disk_gib"
    assert error.value.value == value
    assert "from 30" in error.value.expected
    assert "to 1907 (AKS's largest node disk)" in error.value.expected


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_accepts_the_floor(cloud: str) -> None:
    assert traits(cloud).max_disk_gib >= disks.FLOOR_GIB


def test_a_pool_spec_sizes_its_disk_from_the_choice() -> None:
    cluster = Cluster("gcp", "us-central1", "c", "google_cloud_default", {"project": "p", "location": "us-central1"})
    choice = {
        "cloud": "gcp",
        "region": "us-central1",
        "availability_zone": "us-central1-a",
        "instance_type": "a2-ultragpu-4g",
        "accelerator": "A100-80GB",
        "accelerator_count": 4,
        "memory_gib": 80.0,
        "capacity_type": "spot",
        "nodes": 1,
    }
    spec = NodePoolSpec.from_choice(choice, cluster, dag_id="d", run_id="r")
    assert spec.disk_gib == disks.needed_gib(320.0) == 40 + 640


def test_gib_in_gb_rounds_up() -> None:
    assert disks.gib_in_gb(100) == 108  # 107.37 GB
    assert disks.gib_in_gb(0) == 0
