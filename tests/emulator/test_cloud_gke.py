"""GKE through an unmodified ClusterManagerClient (REST): node pools, operations that fail with GKE codes."""

from __future__ import annotations

import time
import urllib.error
from pathlib import Path

import pytest
from conftest import (
    kube,
    node_events,
    node_ready,
    nodes_labelled,
    pod_gone,
    running_with_handler,
    sigterm_pod,
)
from google.api_core import exceptions
from google.cloud import container_v1
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import EmulatorProcess, eventually

CLUSTER = "gpuflow-usc1"
PARENT = f"projects/gpuflow-demo/locations/us-central1/clusters/{CLUSTER}"
LOCATION = "projects/gpuflow-demo/locations/us-central1"
Status = container_v1.NodePool.Status
POOL_LABEL = "cloud.google.com/gke-nodepool"


def client(clouds: EmulatorProcess) -> container_v1.ClusterManagerClient:
    return clients.gke(clouds.clouds()["gcp"])


def create(
    gke: container_v1.ClusterManagerClient, name: str, spot: bool = False, nodes: int = 1
) -> container_v1.Operation:
    pool = container_v1.NodePool(
        name=name,
        initial_node_count=nodes,
        locations=["us-central1-a"],
        config=container_v1.NodeConfig(
            machine_type="g2-standard-4",
            accelerators=[container_v1.AcceleratorConfig(accelerator_count=1, accelerator_type="nvidia-l4")],
            labels={"gpuflow.io/run": "r1"},
            spot=spot,
        ),
    )
    return gke.create_node_pool(parent=PARENT, node_pool=pool)


def finished(gke: container_v1.ClusterManagerClient, operation: container_v1.Operation) -> container_v1.Operation:
    name = f"{LOCATION}/operations/{operation.name}"

    def probe() -> container_v1.Operation | None:
        current = gke.get_operation(name=name)
        return current if current.status == container_v1.Operation.Status.DONE else None

    return eventually(probe, timeout=10, what=f"operation {operation.name} DONE")


def test_get_cluster_returns_the_emulated_kubernetes_endpoint(clouds: EmulatorProcess) -> None:
    cluster = client(clouds).get_cluster(name=PARENT)
    assert cluster.status == container_v1.Cluster.Status.RUNNING
    assert cluster.endpoint.endswith(f"/clusters/{CLUSTER}")


def test_unknown_cluster_is_not_found(clouds: EmulatorProcess) -> None:
    with pytest.raises(exceptions.NotFound):
        client(clouds).get_cluster(name=f"{LOCATION}/clusters/nope")


def test_node_pool_runs_with_gke_labels_and_is_deleted(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    operation = create(gke, "l4pool")
    assert operation.operation_type == container_v1.Operation.Type.CREATE_NODE_POOL
    assert gke.get_node_pool(name=f"{PARENT}/nodePools/l4pool").status == Status.PROVISIONING
    done = finished(gke, operation)
    assert not done.error.message
    assert gke.get_node_pool(name=f"{PARENT}/nodePools/l4pool").status == Status.RUNNING
    assert "l4pool" in [p.name for p in gke.list_node_pools(parent=PARENT).node_pools]

    core = kube(clouds, CLUSTER)
    (node,) = [n for n in core.list_node().items if n.metadata.labels.get("cloud.google.com/gke-nodepool") == "l4pool"]
    labels = node.metadata.labels
    assert labels["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert labels["topology.kubernetes.io/zone"] == "us-central1-a"
    assert labels["node.kubernetes.io/instance-type"] == "g2-standard-4"
    assert "cloud.google.com/gke-spot" not in labels
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "present", "NoSchedule")]

    deletion = gke.delete_node_pool(name=f"{PARENT}/nodePools/l4pool")
    assert gke.get_node_pool(name=f"{PARENT}/nodePools/l4pool").status == Status.STOPPING
    finished(gke, deletion)
    with pytest.raises(exceptions.NotFound):
        gke.get_node_pool(name=f"{PARENT}/nodePools/l4pool")
    assert not [n for n in core.list_node().items if n.metadata.name == node.metadata.name]


def test_duplicate_node_pool_is_already_exists(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    create(gke, "dup")
    with pytest.raises(exceptions.Conflict):
        create(gke, "dup")


def test_sync_stockout_is_a_google_api_error_with_the_gke_reason(clouds: EmulatorProcess) -> None:
    with pytest.raises(exceptions.TooManyRequests) as caught:
        create(client(clouds), "syncstock")
    assert caught.value.reason == "ZONE_RESOURCE_POOL_EXHAUSTED"


def test_sync_global_gpu_quota_is_a_bare_403_naming_the_project_quota(clouds: EmulatorProcess) -> None:
    with pytest.raises(exceptions.Forbidden) as caught:
        create(client(clouds), "syncquota")
    assert caught.value.reason is None  # GKE sends no ErrorInfo with it: the metric is only in the text
    assert 'Insufficient project quota to satisfy request: resource "GPUS_ALL_REGIONS"' in caught.value.message


def test_sync_regional_gpu_quota_names_the_gpu_metric(clouds: EmulatorProcess) -> None:
    with pytest.raises(exceptions.Forbidden) as caught:
        create(client(clouds), "syncregquota", spot=True)
    assert caught.value.reason is None
    assert (
        'Insufficient regional quota to satisfy request: resource "PREEMPTIBLE_NVIDIA_L4_GPUS": '
        "request requires '1.0' and is short '1.0'." in caught.value.message
    )


def test_async_stockout_leaves_the_pool_running_with_error_and_no_node(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    done = finished(gke, create(gke, "asyncstock"))
    assert done.error.code == 8
    pool = gke.get_node_pool(name=f"{PARENT}/nodePools/asyncstock")
    assert pool.status == Status.RUNNING_WITH_ERROR  # not ERROR: GKE goes on trying to create the VMs
    assert pool.status_message.startswith("us-central1-a: Deploy error: Not all instances running in IGM")
    assert "[ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS]" in pool.status_message
    assert not [p for p in clouds.pools() if p["name"] == "asyncstock" and p["nodes"]]


def test_async_quota_failure_ends_the_operation_done_and_the_pool_in_error(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    done = finished(gke, create(gke, "asyncquota"))
    assert done.error.code == 8
    assert "GPUS_ALL_REGIONS" in done.error.message
    pool = gke.get_node_pool(name=f"{PARENT}/nodePools/asyncquota")
    assert pool.status == Status.ERROR
    assert "GPUS_ALL_REGIONS" in pool.status_message


def test_never_ready_operation_keeps_running(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    operation = create(gke, "neverready")
    eventually(lambda: any(p["name"] == "neverready" for p in clouds.pools()))
    name = f"{LOCATION}/operations/{operation.name}"
    assert gke.get_operation(name=name).status == container_v1.Operation.Status.RUNNING
    assert gke.get_node_pool(name=f"{PARENT}/nodePools/neverready").status == Status.PROVISIONING


def test_spot_pool_nodes_are_labelled_preempted_and_come_back(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    finished(gke, create(gke, "spotl4", spot=True))
    core = kube(clouds, CLUSTER)
    spot_nodes = [n for n in core.list_node().items if n.metadata.labels.get("cloud.google.com/gke-spot") == "true"]
    assert [n.metadata.labels[POOL_LABEL] for n in spot_nodes] == ["spotl4"]
    node = spot_nodes[0].metadata.name
    eventually(lambda: {"Preempted", "NodeShutdown"} <= dict(node_events(core, node)).keys(), what="the shutdown")
    eventually(lambda: node_ready(core, node) == "True" and nodes_labelled(core, POOL_LABEL, "spotl4") == [node])
    time.sleep(2)  # longer than preempt_after_seconds (1.5 s here): its one preemption (the default) is over
    assert [reason for reason, _ in node_events(core, node)].count("Preempted") == 1


def test_a_test_may_preempt_one_node_of_a_spot_pool_and_the_others_stay(spot_clouds: EmulatorProcess) -> None:
    """A cloud takes back some VMs of a pool, not always all: a multi-node training loses one of its nodes."""
    gke = client(spot_clouds)
    finished(gke, create(gke, "spottwo", spot=True, nodes=2))
    core = kube(spot_clouds, CLUSTER)
    kept, taken = nodes_labelled(core, POOL_LABEL, "spottwo")

    assert spot_clouds.preempt("gcp", CLUSTER, "spottwo", [taken]) == [taken]

    eventually(lambda: "NodeShutdown" in dict(node_events(core, taken)), what="the chosen node shut down")
    assert "Preempted" not in dict(node_events(core, kept))
    assert node_ready(core, kept) == "True"
    with pytest.raises(urllib.error.HTTPError) as refused:  # taken is down: not preempted twice
        spot_clouds.preempt("gcp", CLUSTER, "spottwo", [taken])
    assert refused.value.code == 404


def test_spot_vm_preemption_shuts_the_node_down_and_the_vm_comes_back_under_its_name(
    spot_clouds: EmulatorProcess, tmp_path: Path
) -> None:
    gke = client(spot_clouds)
    finished(gke, create(gke, "spotshut", spot=True))
    core = kube(spot_clouds, CLUSTER)
    (node,) = nodes_labelled(core, POOL_LABEL, "spotshut")
    marker = tmp_path / "sigterm"
    core.create_namespaced_pod("default", sigterm_pod("trainer", node, marker))
    running_with_handler(core, "trainer", marker)

    assert spot_clouds.preempt("gcp", CLUSTER, "spotshut") == [node]

    eventually(marker.exists, what="SIGTERM at the pod on the preempted node")
    eventually(
        lambda: core.read_namespaced_pod("trainer", "default").status.phase == "Failed",
        what="the pod Failed by the node shutdown",
    )
    pod = core.read_namespaced_pod("trainer", "default")
    assert (pod.status.reason, pod.status.message) == (
        "Terminated",
        "Pod was terminated in response to imminent node shutdown.",
    )
    disruption = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert {"Preempted", "NodeShutdown"} <= dict(node_events(core, node)).keys()

    eventually(lambda: node_ready(core, node) == "Unknown", what="the node NotReady once its VM is gone")
    taints = [(t.key, t.effect) for t in core.read_node(node).spec.taints]
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints
    eventually(lambda: node_ready(core, node) == "True", timeout=10, what="the VM recreated under the same name")
    assert nodes_labelled(core, POOL_LABEL, "spotshut") == [node]
    assert pod_gone(core, "trainer")  # deleted with the old Node when the recreated VM registered
    assert gke.get_node_pool(name=f"{PARENT}/nodePools/spotshut").status == Status.RUNNING


def test_set_size_scales_down(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    finished(gke, create(gke, "resized"))
    core = kube(clouds, CLUSTER)

    def nodes() -> int:
        items = core.list_node().items
        return len([n for n in items if n.metadata.labels.get("cloud.google.com/gke-nodepool") == "resized"])

    assert nodes() == 1
    gke.set_node_pool_size(request={"name": f"{PARENT}/nodePools/resized", "node_count": 0})
    eventually(lambda: nodes() == 0, what="no nodes left")


def test_update_node_pool_replaces_node_labels_on_the_pool_and_its_nodes(clouds: EmulatorProcess) -> None:
    gke = client(clouds)
    finished(gke, create(gke, "relabel"))
    name = f"{PARENT}/nodePools/relabel"
    pool = gke.get_node_pool(name=name)
    request = container_v1.UpdateNodePoolRequest(
        name=name,
        node_version=pool.version,
        image_type=pool.config.image_type,
        labels=container_v1.NodeLabels(labels={"gpuflow.io/run": "r1", "gpuflow.io/expires-at": "1900000000"}),
    )
    operation = finished(gke, gke.update_node_pool(request=request))
    assert operation.operation_type == container_v1.Operation.Type.UPGRADE_NODES
    assert dict(gke.get_node_pool(name=name).config.labels) == {
        "gpuflow.io/run": "r1",
        "gpuflow.io/expires-at": "1900000000",
    }
    (node,) = [
        n
        for n in kube(clouds, CLUSTER).list_node().items
        if n.metadata.labels.get("cloud.google.com/gke-nodepool") == "relabel"
    ]
    assert node.metadata.labels["gpuflow.io/expires-at"] == "1900000000"


def test_update_of_a_missing_node_pool_is_not_found(clouds: EmulatorProcess) -> None:
    request = container_v1.UpdateNodePoolRequest(
        name=f"{PARENT}/nodePools/nope", labels=container_v1.NodeLabels(labels={"a": "b"})
    )
    with pytest.raises(exceptions.NotFound):
        client(clouds).update_node_pool(request=request)


BUSY_MESSAGE = (
    "Operation operation-1634563651427-e3d4b2e0 is currently deleting a node pool for cluster {cluster}. "
    "Please wait and try again once it is done."
)


def test_a_busy_cluster_answers_400_failed_precondition_please_wait(tmp_path: Path) -> None:
    scenario = {
        "time_scale": 100,
        "api": [
            {"kind": "busy", "match": {"cloud": "gcp", "operation": operation}, "calls": [1], "message": BUSY_MESSAGE}
            for operation in ("CreateNodePool", "DeleteNodePool")
        ],
    }
    with EmulatorProcess.start_clouds(tmp_path, scenario) as running:
        gke = client(running)
        with pytest.raises(exceptions.BadRequest) as caught:
            create(gke, "busy")
        assert caught.value.reason is None
        assert caught.value.message.endswith(BUSY_MESSAGE.format(cluster=CLUSTER))  # after api_core's "POST url: "
        finished(gke, create(gke, "busy"))  # the second try goes through
        with pytest.raises(exceptions.BadRequest, match="Please wait and try again"):
            gke.delete_node_pool(name=f"{PARENT}/nodePools/busy")
        gke.delete_node_pool(name=f"{PARENT}/nodePools/busy")
