"""The device plugin add-on: valid manifests, only where a cloud's node image ships no plugin, landing on gpuflow's
GPU and spot taints, and carrying nothing a teardown or the janitor would select."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core import accelerators, naming
from gpuflow.core.clouds import CLOUD_TRAITS, CLOUDS, traits
from gpuflow.core.nodepool import ACCELERATOR_LABEL
from gpuflow.kube.device_plugins import NAMESPACE, PLUGINS, addon_manifests
from tests.unit.kube.schema import assert_valid

ADDONS = [(cloud, resource) for cloud in CLOUDS for resource in sorted(traits(cloud).device_plugin_addons)]


def daemonset(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == "DaemonSet"]
    return found


@pytest.mark.parametrize(("cloud", "resource"), ADDONS)
def test_every_addon_manifest_is_valid_kubernetes(cloud: str, resource: str) -> None:
    for manifest in addon_manifests(cloud, resource):
        assert_valid(manifest)


def test_the_clouds_that_need_an_addon_are_eks_neuron_and_aks_nvidia() -> None:
    assert ADDONS == [("aws", accelerators.NEURON), ("azure", accelerators.NVIDIA)]


@pytest.mark.parametrize(
    ("cloud", "resource"),
    [("aws", accelerators.NVIDIA), ("gcp", accelerators.NVIDIA), ("gcp", accelerators.TPU)],
    ids=["eks-bottlerocket-nvidia", "gke-gpu", "gke-tpu"],
)
def test_nothing_is_installed_where_the_node_image_ships_the_plugin(cloud: str, resource: str) -> None:
    assert addon_manifests(cloud, resource) == []


@pytest.mark.parametrize(("cloud", "resource"), ADDONS)
def test_the_plugin_tolerates_the_accelerator_taint_and_the_clouds_spot_taint(cloud: str, resource: str) -> None:
    spec = daemonset(addon_manifests(cloud, resource))["spec"]["template"]["spec"]
    tolerated = {t["key"] for t in spec["tolerations"] if t["operator"] == "Exists"}
    spot = traits(cloud).spot_taint
    assert {resource, *([spot[0]] if spot else [])} <= tolerated
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": ACCELERATOR_LABEL, "operator": "Exists"}]  # gpuflow's pools only


@pytest.mark.parametrize(("cloud", "resource"), ADDONS)
def test_the_addon_is_shared_never_a_runs_object(cloud: str, resource: str) -> None:
    for manifest in addon_manifests(cloud, resource):
        labels = manifest["metadata"]["labels"]
        assert not {naming.MANAGED_LABEL, naming.RUN_LABEL, naming.DAG_LABEL} & set(labels), manifest["kind"]
        assert manifest["metadata"].get("namespace", NAMESPACE) == NAMESPACE
    template_labels = daemonset(addon_manifests(cloud, resource))["spec"]["template"]["metadata"]["labels"]
    assert naming.MANAGED_LABEL not in template_labels  # its pods are not swept either


@pytest.mark.parametrize("resource", sorted(PLUGINS))
def test_each_plugin_image_is_pinned_to_a_release(resource: str) -> None:
    image = PLUGINS[resource].image
    repository, _, tag = image.rpartition(":")
    assert repository
    assert tag.lstrip("v")[:1].isdigit(), image


def test_the_neuron_plugin_gets_the_service_account_and_rbac_its_manifest_ships() -> None:
    manifests = addon_manifests("aws", accelerators.NEURON)
    assert [m["kind"] for m in manifests] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"]
    name = manifests[0]["metadata"]["name"]
    assert daemonset(manifests)["spec"]["template"]["spec"]["serviceAccountName"] == name
    assert manifests[2]["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]


def test_every_cloud_installs_only_resources_its_nodes_offer() -> None:
    for facts in CLOUD_TRAITS.values():
        assert facts.device_plugin_addons <= facts.accelerator_resources, facts.name
        assert facts.device_plugin_addons <= set(PLUGINS), facts.name
