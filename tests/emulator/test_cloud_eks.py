"""EKS through an unmodified boto3 client: node groups, their states and health issues, real error codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import kube, node_events, nodes_labelled, pod_gone, running_with_handler, sigterm_pod
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod

CLUSTER, REGION = "gpuflow-use1", "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/gpuflow-eks-node"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"


def eks(clouds: EmulatorProcess, max_attempts: int | None = 1) -> Any:
    return clients.eks(clouds.clouds()["aws"], REGION, max_attempts)


def create(client: Any, name: str, **extra: Any) -> dict[str, Any]:
    request = {
        "clusterName": CLUSTER,
        "nodegroupName": name,
        "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 1},
        "subnets": ["subnet-0a11"],
        "instanceTypes": ["g6.xlarge"],
        "nodeRole": ROLE,
        **extra,
    }
    return dict(client.create_nodegroup(**request)["nodegroup"])


def settled(client: Any, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        group = client.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]
        return None if group["status"] == "CREATING" and not group["health"]["issues"] else dict(group)

    return eventually(probe, timeout=10, what=f"node group {name} to leave CREATING or report an issue")


def test_describe_cluster_returns_the_emulated_kubernetes_endpoint(clouds: EmulatorProcess) -> None:
    cluster = eks(clouds).describe_cluster(name=CLUSTER)["cluster"]
    assert cluster["status"] == "ACTIVE"
    assert cluster["endpoint"].endswith(f"/clusters/{CLUSTER}")
    kube(clouds, CLUSTER).list_node()


def test_describe_cluster_in_another_region_is_not_found(clouds: EmulatorProcess) -> None:
    with pytest.raises(ClientError) as caught:
        clients.eks(clouds.clouds()["aws"], "us-west-2", 1).describe_cluster(name=CLUSTER)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_node_group_becomes_active_with_labelled_gpu_nodes_and_goes_away(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    # Bottlerocket's NVIDIA AMI ships the device plugin, so the node advertises its GPU without one installed.
    created = create(
        client,
        "gpu",
        labels={"gpuflow.io/run": "r1"},
        taints=[taint],
        capacityType="ON_DEMAND",
        amiType="BOTTLEROCKET_x86_64_NVIDIA",
    )
    assert created["status"] == "CREATING"
    assert settled(client, "gpu")["status"] == "ACTIVE"
    assert "gpu" in client.list_nodegroups(clusterName=CLUSTER)["nodegroups"]
    core = kube(clouds, CLUSTER)
    (node,) = [n for n in core.list_node().items if n.metadata.labels.get("eks.amazonaws.com/nodegroup") == "gpu"]
    labels = node.metadata.labels
    assert labels["eks.amazonaws.com/capacityType"] == "ON_DEMAND"
    assert labels["node.kubernetes.io/instance-type"] == "g6.xlarge"
    assert labels["topology.kubernetes.io/region"] == REGION
    assert labels["topology.kubernetes.io/zone"] == "use1-az1"
    assert labels["gpuflow.io/run"] == "r1"
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    assert [(t.key, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]

    pod = python_pod(
        "train",
        "import time; time.sleep(60)",
        nodeSelector={"eks.amazonaws.com/nodegroup": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    core.create_namespaced_pod("default", pod)
    eventually(lambda: core.read_namespaced_pod("train", "default").status.phase == "Running", what="pod running")

    assert client.delete_nodegroup(clusterName=CLUSTER, nodegroupName="gpu")["nodegroup"]["status"] == "DELETING"
    eventually(lambda: core.read_namespaced_pod("train", "default").status.phase == "Failed", what="pod failed")
    assert not [n for n in core.list_node().items if n.metadata.name == node.metadata.name]

    def gone() -> bool:
        try:
            client.describe_nodegroup(clusterName=CLUSTER, nodegroupName="gpu")
        except ClientError as exc:
            return bool(exc.response["Error"]["Code"] == "ResourceNotFoundException")
        return False

    eventually(gone, what="node group gone")


def test_duplicate_node_group_is_resource_in_use(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "dup")
    with pytest.raises(ClientError) as caught:
        create(client, "dup")
    assert caught.value.response["Error"]["Code"] == "ResourceInUseException"


def test_sync_stockout_is_insufficient_instance_capacity(clouds: EmulatorProcess) -> None:
    with pytest.raises(ClientError) as caught:
        create(eks(clouds), "syncstock")
    assert caught.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"


@pytest.mark.parametrize(
    ("name", "status"), [("asyncstock", "CREATE_FAILED"), ("degraded", "DEGRADED"), ("launching", "CREATING")]
)
def test_async_stockout_reports_asg_launch_failure(clouds: EmulatorProcess, name: str, status: str) -> None:
    client = eks(clouds)
    create(client, name)
    group = settled(client, name)
    assert group["status"] == status
    (issue,) = group["health"]["issues"]
    assert issue["code"] == "AsgInstanceLaunchFailures"
    assert "InsufficientInstanceCapacity" in issue["message"]


def test_nodes_that_cannot_join_are_a_node_creation_failure(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "nojoin")
    group = settled(client, "nojoin")
    assert group["status"] == "CREATE_FAILED"
    assert group["health"]["issues"][0]["code"] == "NodeCreationFailure"
    assert group["health"]["issues"][0]["message"] == "Instances failed to join the kubernetes cluster"


def test_quota_is_resource_limit_exceeded_sync_and_vcpu_limit_async(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    with pytest.raises(ClientError) as caught:
        create(client, "syncquota")
    assert caught.value.response["Error"]["Code"] == "ResourceLimitExceededException"
    create(client, "asyncquota")
    (issue,) = settled(client, "asyncquota")["health"]["issues"]
    assert "VcpuLimitExceeded" in issue["message"]


def test_never_ready_node_group_stays_creating_without_nodes(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "neverready")
    calls_before = len(clouds.calls("aws"))
    eventually(lambda: len(clouds.calls("aws")) > calls_before + 5 or client.list_nodegroups(clusterName=CLUSTER))
    pool = next(p for p in clouds.pools() if p["name"] == "neverready")
    assert pool["state"] == "CREATING"
    assert pool["nodes"] == []


def test_spot_node_is_preempted_with_an_interruption_event_and_replaced(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "spotgpu", capacityType="SPOT")
    assert settled(client, "spotgpu")["capacityType"] == "SPOT"
    core = kube(clouds, CLUSTER)
    (first,) = nodes_labelled(core, NODEGROUP_LABEL, "spotgpu")

    eventually(lambda: "SpotInterruption" in dict(node_events(core, first)), what="a SpotInterruption event")
    replacement = eventually(
        lambda: [n for n in nodes_labelled(core, NODEGROUP_LABEL, "spotgpu") if n != first],
        what="the Auto Scaling group's replacement node",
    )
    assert nodes_labelled(core, NODEGROUP_LABEL, "spotgpu") == replacement  # one new node, the first one gone
    group = client.describe_nodegroup(clusterName=CLUSTER, nodegroupName="spotgpu")["nodegroup"]
    assert (group["status"], group["scalingConfig"]["desiredSize"]) == ("ACTIVE", 1)


def test_spot_interruption_cordons_and_drains_the_node_then_it_is_replaced(
    spot_clouds: EmulatorProcess, tmp_path: Path
) -> None:
    client = eks(spot_clouds)
    create(client, "spotdrain", capacityType="SPOT")
    settled(client, "spotdrain")
    core = kube(spot_clouds, CLUSTER)
    (node,) = nodes_labelled(core, NODEGROUP_LABEL, "spotdrain")
    marker = tmp_path / "sigterm"
    core.create_namespaced_pod("default", sigterm_pod("trainer", node, marker, linger=1))
    running_with_handler(core, "trainer", marker)

    assert spot_clouds.preempt("aws", CLUSTER, "spotdrain") == [node]

    eventually(marker.exists, what="SIGTERM at the pod on the interrupted node")
    cordoned = core.read_node(node)
    assert cordoned.spec.unschedulable
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in [(t.key, t.effect) for t in cordoned.spec.taints]
    evicted = core.read_namespaced_pod("trainer", "default")
    assert evicted.metadata.deletion_grace_period_seconds == 6  # its 30 s, cut to the 2-minute notice (6 s here)
    eventually(lambda: pod_gone(core, "trainer"), what="the evicted pod deleted")
    reasons = dict(node_events(core, node))
    assert "terminate at" in reasons["SpotInterruption"]
    assert reasons["NodeNotSchedulable"] == f"Node {node} status is now: NodeNotSchedulable"
    pod_events = core.list_namespaced_event("default", field_selector="involvedObject.name=trainer").items
    assert ("Killing", "Stopping container main") in [(e.reason, e.message) for e in pod_events]

    eventually(lambda: node not in nodes_labelled(core, NODEGROUP_LABEL, "spotdrain"), what="the instance terminated")
    (replacement,) = eventually(
        lambda: nodes_labelled(core, NODEGROUP_LABEL, "spotdrain"), what="the Auto Scaling group's replacement"
    )
    assert replacement != node
    assert not core.read_node(replacement).spec.unschedulable


def test_scaling_down_removes_nodes(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "scaled", scalingConfig={"minSize": 0, "maxSize": 3, "desiredSize": 2})
    settled(client, "scaled")
    core = kube(clouds, CLUSTER)

    def nodes() -> int:
        return len(
            [n for n in core.list_node().items if n.metadata.labels.get("eks.amazonaws.com/nodegroup") == "scaled"]
        )

    assert nodes() == 2
    client.update_nodegroup_config(clusterName=CLUSTER, nodegroupName="scaled", scalingConfig={"desiredSize": 1})
    eventually(lambda: nodes() == 1, what="one node left")


def test_update_config_labels_merge_into_the_node_group_and_its_nodes(clouds: EmulatorProcess) -> None:
    client = eks(clouds)
    create(client, "relabel", labels={"gpuflow.io/run": "r1", "team": "ml"})
    settled(client, "relabel")
    update = client.update_nodegroup_config(
        clusterName=CLUSTER,
        nodegroupName="relabel",
        labels={"addOrUpdateLabels": {"gpuflow.io/expires-at": "1900000000"}, "removeLabels": ["team"]},
    )["update"]
    assert update["type"] == "ConfigUpdate"
    labels = client.describe_nodegroup(clusterName=CLUSTER, nodegroupName="relabel")["nodegroup"]["labels"]
    assert labels == {"gpuflow.io/run": "r1", "gpuflow.io/expires-at": "1900000000"}
    (node,) = [
        n
        for n in kube(clouds, CLUSTER).list_node().items
        if n.metadata.labels.get("eks.amazonaws.com/nodegroup") == "relabel"
    ]
    assert node.metadata.labels["gpuflow.io/expires-at"] == "1900000000"
    assert "team" not in node.metadata.labels


def test_update_config_of_a_missing_node_group_is_not_found(clouds: EmulatorProcess) -> None:
    with pytest.raises(ClientError) as caught:
        eks(clouds).update_nodegroup_config(
            clusterName=CLUSTER, nodegroupName="nope", labels={"addOrUpdateLabels": {"a": "b"}}
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
