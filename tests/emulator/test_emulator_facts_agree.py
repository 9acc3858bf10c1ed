"""gpuflow and the emulator hold the facts both need twice; here they are compared, so a mistake is found.

The emulator may not import gpuflow (test_emulator_independence.py), so what a node of an instance type
carries, GKE's accelerator names and the labels and taints of pool nodes are written down on both sides.
Tests may read both: every instance type the shipped catalog can ask for must look the same to each side,
and the nodes the emulator makes must be ones gpuflow's placement selects and tolerates.
"""

from __future__ import annotations

from typing import Any

import pytest
from gpuflow_emulator.clouds import machines
from gpuflow_emulator.clouds.aks import AksFlavor
from gpuflow_emulator.clouds.eks import EksFlavor
from gpuflow_emulator.clouds.gke import GkeFlavor
from gpuflow_emulator.clouds.pools import Flavor, Pool
from gpuflow_emulator.config import load as load_config
from gpuflow_emulator.testing import DEFAULT_CONFIG

from gpuflow.core import accelerators
from gpuflow.core.catalog import CapacityType, load_catalog
from gpuflow.core.clouds import traits
from gpuflow.kube import placement
from gpuflow.kube.device_plugins import PLUGINS

# (cloud, instance type, accelerator, accelerators per node) of every shape the shipped catalog offers.
SHAPES = sorted({(o.cloud, o.instance_type, o.accelerator, o.accelerator_count) for o in load_catalog().offers})
FLAVORS: dict[str, Flavor] = {"aws": EksFlavor(), "gcp": GkeFlavor(), "azure": AksFlavor()}
ZONE = "zone-a"


def _attached_on_gke(cloud: str, accelerator: str) -> bool:
    """gpuflow asks GKE for these GPUs in the pool's `accelerators` config, not through the machine type."""
    return cloud == "gcp" and accelerator in accelerators.GKE_ACCELERATOR_TYPES


def test_every_catalog_instance_type_has_the_same_accelerators_in_the_emulator() -> None:
    disagreements = []
    for cloud, instance_type, accelerator, count in SHAPES:
        expected = machines.Shape(accelerator, count, accelerators.resource_name(accelerator))
        shape = machines.shape(cloud, instance_type)
        if shape is None and _attached_on_gke(cloud, accelerator):
            continue  # n1 machine types: the request says which GPUs (compared in the GKE test below)
        if shape != expected:
            disagreements.append(f"{cloud} {instance_type}: gpuflow {expected}, emulator {shape}")
    assert disagreements == [], "\n".join(disagreements)


def test_gke_accelerator_types_label_and_resource_agree() -> None:
    emulated = machines.gke_accelerators()
    assert emulated.types == accelerators.GKE_ACCELERATOR_TYPES
    assert emulated.label == traits("gcp").accelerator_label
    assert emulated.resource == accelerators.NVIDIA


def _pool(cloud: str, instance_type: str, accelerator: str, count: int, spot: bool) -> Pool:
    """The emulator's pool for what gpuflow requests (GKE: the accelerators config gpuflow sends)."""
    request: dict[str, Any] = {"properties": {"mode": "User"}}
    fields: dict[str, Any] = {}
    if _attached_on_gke(cloud, accelerator):
        gke_type = accelerators.GKE_ACCELERATOR_TYPES[accelerator]
        request = {"config": {"accelerators": [{"acceleratorType": gke_type, "acceleratorCount": count}]}}
        fields = {
            "accelerator": gke_type,
            "accelerators_per_node": count,
            "resource": machines.gke_accelerators().resource,
        }
    return Pool(cloud, "cluster", "gpus", "region", (ZONE,), instance_type, 1, spot=spot, request=request, **fields)


@pytest.mark.parametrize("capacity", list(CapacityType))
def test_emulated_nodes_match_placement_selectors_tolerations_and_limits(capacity: CapacityType) -> None:
    disagreements = []
    for cloud, instance_type, accelerator, count in SHAPES:
        pool = _pool(cloud, instance_type, accelerator, count, spot=capacity is CapacityType.SPOT)
        flavor = FLAVORS[cloud]
        labels, taints = flavor.node_labels(pool, ZONE), flavor.node_taints(pool)
        wanted = placement.placement(cloud, pool.name, accelerator, count, capacity)
        tolerated = {(t["key"], t["value"]) for t in wanted.tolerations}
        where = f"{cloud} {instance_type} {capacity}"
        if missing := {k: v for k, v in wanted.node_selector.items() if labels.get(k) != v}:
            disagreements.append(f"{where}: nodes lack selector labels {missing} (have {labels})")
        if untolerated := [t for t in taints if (t["key"], t["value"]) not in tolerated]:
            disagreements.append(f"{where}: placement tolerates none of {untolerated}")
        if pool.allocatable() != {wanted.resource: str(count)}:
            disagreements.append(f"{where}: nodes hold {pool.allocatable()}, pods ask for {wanted.resources}")
    assert disagreements == [], "\n".join(disagreements)


def test_the_emulator_recognises_every_device_plugin_gpuflow_installs() -> None:
    """An add-on image the emulator's table does not list would run nowhere and advertise nothing."""
    table = load_config(DEFAULT_CONFIG)
    for resource, plugin in PLUGINS.items():
        recognised = table.device_plugin(plugin.image)
        assert recognised is not None, f"{plugin.image} is not in the device_plugins table of {DEFAULT_CONFIG}"
        assert recognised.resource == resource
