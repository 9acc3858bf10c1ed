"""AKS through an unmodified ContainerServiceClient over TLS: agent pools as ARM long-running operations."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from conftest import kube, node_events, nodes_labelled, pod_gone, running_with_handler, sigterm_pod
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import EmulatorProcess, eventually

RG, CLUSTER = "gpuflow", "gpuflow-eastus"
POOL_LABEL = "kubernetes.azure.com/agentpool"


def client(clouds: EmulatorProcess, retry_total: int | None = 0) -> Any:
    urls = clouds.clouds()
    return clients.aks(urls["azure"], urls["azure_ca"], retry_total)


def pool_body(spot: bool = False, **extra: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "count": 1,
        "vmSize": "Standard_NC4as_T4_v3",
        "mode": "User",
        "nodeLabels": {"gpuflow.io/run": "r1"},
        "nodeTaints": ["nvidia.com/gpu=present:NoSchedule"],
        **extra,
    }
    if spot:
        properties.update(scaleSetPriority="Spot", scaleSetEvictionPolicy="Delete", spotMaxPrice=-1)
    return {"properties": properties}


def create(aks: Any, name: str, **kwargs: Any) -> Any:
    return aks.agent_pools.begin_create_or_update(RG, CLUSTER, name, pool_body(**kwargs)).result()


def test_managed_cluster_and_user_kubeconfig_point_at_the_emulated_cluster(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    cluster = aks.managed_clusters.get(RG, CLUSTER)
    assert cluster.location == "eastus"
    assert cluster.properties.provisioning_state == "Succeeded"
    (kubeconfig,) = aks.managed_clusters.list_cluster_user_credentials(RG, CLUSTER).kubeconfigs
    config = yaml.safe_load(
        base64.b64decode(kubeconfig.value) if isinstance(kubeconfig.value, str) else kubeconfig.value
    )
    assert config["clusters"][0]["cluster"]["server"].endswith(f"/clusters/{CLUSTER}")


def test_unknown_cluster_is_resource_not_found(clouds: EmulatorProcess) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        client(clouds).managed_clusters.get(RG, "nope")
    assert caught.value.error is not None
    assert caught.value.error.code == "ResourceNotFound"


def test_agent_pool_succeeds_with_aks_labels_and_is_deleted(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    poller = aks.agent_pools.begin_create_or_update(RG, CLUSTER, "t4pool", pool_body())
    assert aks.agent_pools.get(RG, CLUSTER, "t4pool").properties.provisioning_state == "Creating"
    pool = poller.result()
    assert pool.properties.provisioning_state == "Succeeded"
    assert "t4pool" in [p.name for p in aks.agent_pools.list(RG, CLUSTER)]

    core = kube(clouds, CLUSTER)
    (node,) = [n for n in core.list_node().items if n.metadata.labels.get("kubernetes.azure.com/agentpool") == "t4pool"]
    assert node.metadata.name.startswith("aks-t4pool-")
    assert node.metadata.labels["gpuflow.io/run"] == "r1"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "Standard_NC4as_T4_v3"
    assert "nvidia.com/gpu" not in node.status.allocatable  # AKS installs drivers, not the device plugin
    assert [(t.key, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]

    aks.agent_pools.begin_delete(RG, CLUSTER, "t4pool").result()
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.get(RG, CLUSTER, "t4pool")
    assert not [n for n in core.list_node().items if n.metadata.name == node.metadata.name]
    aks.agent_pools.begin_delete(RG, CLUSTER, "t4pool").result()  # already gone: 204, no error


def test_a_tag_name_with_a_slash_is_refused_as_arm_does(clouds: EmulatorProcess) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client(clouds).agent_pools.begin_create_or_update(
            RG, CLUSTER, "badtags", pool_body(tags={"gpuflow.io/run": "r1", "team": "ml"})
        )
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "InvalidTagNameCharacters"
    assert "gpuflow.io/run" in str(caught.value.error.message)


def test_sync_sku_not_available(clouds: EmulatorProcess) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client(clouds).agent_pools.begin_create_or_update(RG, CLUSTER, "syncstock", pool_body())
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "SkuNotAvailable"


@pytest.mark.parametrize(
    ("name", "zones", "code"),
    [
        ("asyncstock", None, "AllocationFailed"),
        ("asyncstockz", ["1"], "ZonalAllocationFailed"),
        ("asyncquota", None, "QuotaExceeded"),
    ],
)
def test_async_failure_fails_the_operation_with_the_arm_code(
    clouds: EmulatorProcess, name: str, zones: list[str] | None, code: str
) -> None:
    aks = client(clouds)
    extra = {"availabilityZones": zones} if zones else {}
    with pytest.raises(HttpResponseError) as caught:
        create(aks, name, **extra)
    assert caught.value.error is not None
    assert caught.value.error.code == code
    assert aks.agent_pools.get(RG, CLUSTER, name).properties.provisioning_state == "Failed"


def test_sync_quota_exceeded(clouds: EmulatorProcess) -> None:
    with pytest.raises(HttpResponseError) as caught:
        create(client(clouds), "syncquota")
    assert caught.value.error is not None
    assert caught.value.error.code == "QuotaExceeded"


def test_never_ready_pool_stays_creating(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    poller = aks.agent_pools.begin_create_or_update(RG, CLUSTER, "neverready", pool_body())
    poller.wait(timeout=1)
    assert not poller.done()
    assert aks.agent_pools.get(RG, CLUSTER, "neverready").properties.provisioning_state == "Creating"


def test_spot_pool_has_the_spot_label_and_taint_and_is_preempted(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    create(aks, "spotpool", spot=True)
    core = kube(clouds, CLUSTER)
    nodes = [n for n in core.list_node().items if n.metadata.labels.get(POOL_LABEL) == "spotpool"]
    assert nodes
    assert nodes[0].metadata.labels["kubernetes.azure.com/scalesetpriority"] == "spot"
    assert ("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule") in [
        (t.key, t.value, t.effect) for t in nodes[0].spec.taints
    ]
    eventually(
        lambda: "PreemptScheduled" in dict(node_events(core, nodes[0].metadata.name)),
        what="a PreemptScheduled event",
    )
    eventually(lambda: aks.agent_pools.get(RG, CLUSTER, "spotpool").count == 0, what="the pool's count down to 0")


def test_preempt_event_drains_the_spot_node_and_the_pool_shrinks(spot_clouds: EmulatorProcess, tmp_path: Path) -> None:
    aks = client(spot_clouds)
    create(aks, "spotevict", spot=True)
    core = kube(spot_clouds, CLUSTER)
    (node,) = nodes_labelled(core, POOL_LABEL, "spotevict")
    marker = tmp_path / "sigterm"
    core.create_namespaced_pod("default", sigterm_pod("trainer", node, marker))
    running_with_handler(core, "trainer", marker)

    assert spot_clouds.preempt("azure", CLUSTER, "spotevict") == [node]

    eventually(marker.exists, what="SIGTERM at the pod on the evicted node")
    cordoned = core.read_node(node)
    assert cordoned.spec.unschedulable
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in [(t.key, t.effect) for t in cordoned.spec.taints]
    eventually(lambda: pod_gone(core, "trainer"), what="the evicted pod deleted")
    reasons = dict(node_events(core, node))
    assert "NotBefore" in reasons["PreemptScheduled"]
    assert "NodeNotSchedulable" in reasons

    eventually(lambda: not nodes_labelled(core, POOL_LABEL, "spotevict"), what="the Spot VM deleted")
    assert aks.agent_pools.get(RG, CLUSTER, "spotevict").count == 0
    assert aks.agent_pools.get(RG, CLUSTER, "spotevict").provisioning_state == "Succeeded"


def test_put_with_a_lower_count_scales_down(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    create(aks, "scaled", count=2)
    core = kube(clouds, CLUSTER)

    def nodes() -> int:
        items = core.list_node().items
        return len([n for n in items if n.metadata.labels.get("kubernetes.azure.com/agentpool") == "scaled"])

    assert nodes() == 2
    create(aks, "scaled", count=1)
    assert nodes() == 1


def test_put_of_an_existing_pool_updates_its_node_labels_in_place(clouds: EmulatorProcess) -> None:
    aks = client(clouds)
    create(aks, "relabel")
    pool = aks.agent_pools.get(RG, CLUSTER, "relabel")
    pool.node_labels = {**pool.node_labels, "gpuflow.io/expires-at": "1900000000"}
    updated = aks.agent_pools.begin_create_or_update(RG, CLUSTER, "relabel", pool).result()
    assert updated.properties.provisioning_state == "Succeeded"
    assert aks.agent_pools.get(RG, CLUSTER, "relabel").node_labels == {
        "gpuflow.io/run": "r1",
        "gpuflow.io/expires-at": "1900000000",
    }
    nodes = [
        n
        for n in kube(clouds, CLUSTER).list_node().items
        if n.metadata.labels.get("kubernetes.azure.com/agentpool") == "relabel"
    ]
    assert [n.metadata.labels["gpuflow.io/expires-at"] for n in nodes] == ["1900000000"]


def test_a_quota_inside_a_template_validation_error_is_nested_in_details(clouds: EmulatorProcess) -> None:
    with pytest.raises(HttpResponseError) as caught:
        create(client(clouds), "templatequota")
    error = caught.value.error
    assert error is not None
    assert error.code == "InvalidTemplateDeployment"
    assert "See inner errors for details." in str(error.message)
    (inner,) = error.details
    assert inner.code == "QuotaExceeded"
    assert "exceeding approved standardNCASv3_T4Family Cores quota" in str(inner.message)


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("vcpuquota", "ErrCode_InsufficientVCPUQuota", "Insufficient vcpu quota requested 4, remaining 0"),
        ("sizenotallowed", "BadRequest", "is not allowed in your subscription in location 'eastus'"),
    ],
)
def test_aks_refusals_in_aks_words(clouds: EmulatorProcess, name: str, code: str, words: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        create(client(clouds), name)
    assert caught.value.error is not None
    assert caught.value.error.code == code
    assert words in str(caught.value.error.message)
