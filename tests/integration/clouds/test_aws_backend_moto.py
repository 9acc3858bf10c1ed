"""The EKS backend against moto: create, read, list by label, delete (idempotent), through the Airflow hook."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from gpuflow.clouds.aws import EksBackend
from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind
from gpuflow.core.nodepool import NodePoolSpec, PoolState

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/gpuflow-eks-node"
CHOICE = {
    "cloud": "aws",
    "region": REGION,
    "availability_zone": "use1-az2",
    "instance_type": "g6.xlarge",
    "accelerator": "L4",
    "accelerator_count": 1,
    "nodes": 2,
    "capacity_type": "spot",
}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": REGION}}
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_AWS", json.dumps(connection))
    with mock_aws():
        eks = boto3.client("eks", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        eks.create_cluster(name="gpuflow-use1", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-0a12"]})
        yield Cluster(
            "aws",
            REGION,
            "gpuflow-use1",
            "gpuflow_aws",
            {"node_role_arn": ROLE, "subnets": {"use1-az2": "subnet-0a12"}},
        )


def spec_for(cluster: Cluster, run_id: str = "manual__1") -> NodePoolSpec:
    return NodePoolSpec.from_choice(CHOICE, cluster, dag_id="gpu_train_and_serve", run_id=run_id)


def test_backend_satisfies_the_protocol(cluster: Cluster) -> None:
    backend = backend_for(cluster)
    assert isinstance(backend, EksBackend)
    assert isinstance(backend, CloudBackend)


def test_create_read_list_delete(cluster: Cluster) -> None:
    backend = EksBackend(cluster)
    spec = spec_for(cluster)
    ref = backend.create_node_pool(spec)
    group = backend.client.describe_nodegroup(clusterName=cluster.name, nodegroupName=spec.name)["nodegroup"]
    assert group["capacityType"] == "SPOT"
    assert group["subnets"] == ["subnet-0a12"]
    assert group["instanceTypes"] == ["g6.xlarge"]
    assert group["diskSize"] == spec.disk_gib  # not EKS's 20 GiB default, which the vLLM image overflows
    assert group["scalingConfig"]["desiredSize"] == 2
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in group["taints"]
    status = backend.get_node_pool(ref)
    assert status.state is PoolState.READY
    assert status.ready_nodes == 2
    run_label = {naming.RUN_LABEL: naming.run_key("gpu_train_and_serve", "manual__1")}
    assert [s.ref for s in backend.list_node_pools(run_label)] == [ref]
    backend.delete_node_pool(ref)
    assert backend.get_node_pool(ref).state is PoolState.GONE


def test_create_is_get_or_create(cluster: Cluster) -> None:
    backend = EksBackend(cluster)
    spec = spec_for(cluster)
    assert backend.create_node_pool(spec) == backend.create_node_pool(spec)
    assert backend.client.list_nodegroups(clusterName=cluster.name)["nodegroups"] == [spec.name]


def test_delete_node_pool_succeeds_when_already_gone(cluster: Cluster) -> None:
    backend = EksBackend(cluster)
    backend.delete_node_pool(spec_for(cluster).ref)


def test_list_only_returns_pools_of_the_asked_run(cluster: Cluster) -> None:
    backend = EksBackend(cluster)
    mine = backend.create_node_pool(spec_for(cluster, "run-a"))
    backend.create_node_pool(spec_for(cluster, "run-b"))
    labels = {naming.RUN_LABEL: naming.run_key("gpu_train_and_serve", "run-a")}
    assert [s.ref for s in backend.list_node_pools(labels)] == [mine]


def test_missing_cluster_is_classified_not_found(cluster: Cluster) -> None:
    missing = Cluster("aws", REGION, "no-such-cluster", "gpuflow_aws", cluster.settings)
    with pytest.raises(CloudError) as info:
        EksBackend(missing).create_node_pool(spec_for(missing))
    assert (info.value.code, info.value.kind) == ("ResourceNotFoundException", ErrorKind.NOT_FOUND)


def test_label_node_pool_merges_the_expiry_into_the_node_group_labels(cluster: Cluster) -> None:
    backend = EksBackend(cluster)
    spec = spec_for(cluster)
    ref = backend.create_node_pool(spec)
    backend.label_node_pool(ref, {naming.EXPIRES_LABEL: "1900000000"})
    status = backend.get_node_pool(ref)
    assert status.labels == {**spec.labels, naming.EXPIRES_LABEL: "1900000000"}
    assert (status.instance_type, status.node_count, status.spot) == ("g6.xlarge", 2, True)


def test_label_node_pool_of_a_missing_group_is_classified_not_found(cluster: Cluster) -> None:
    with pytest.raises(CloudError) as info:
        EksBackend(cluster).label_node_pool(spec_for(cluster).ref, {naming.EXPIRES_LABEL: "1"})
    assert info.value.kind is ErrorKind.NOT_FOUND


def exec_env(config: dict[str, object]) -> dict[str, str]:
    user = config["users"][0]["user"]  # type: ignore[index]
    return {entry["name"]: entry["value"] for entry in user["exec"]["env"]}


def test_kube_config_hands_the_connections_keys_to_the_token_helper(cluster: Cluster) -> None:
    env = exec_env(EksBackend(cluster).kube_config())
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]) == (
        "testing",
        "testing",
        "",
    )


def test_kube_config_with_a_role_hands_over_the_assumed_roles_temporary_keys(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "arn:aws:iam::123456789012:role/gpuflow-kubernetes"
    extra = {"region_name": REGION, "role_arn": role}
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_AWS", json.dumps(connection))
    env = exec_env(EksBackend(cluster).kube_config())
    assumed = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    ).get_caller_identity()
    assert env["AWS_ACCESS_KEY_ID"] != "testing"
    assert env["AWS_SESSION_TOKEN"]
    assert assumed["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/gpuflow-kubernetes/")


def test_kube_config_without_connection_credentials_leaves_the_helper_to_the_default_chain(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {"conn_type": "aws", "extra": {"region_name": REGION}}
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_AWS", json.dumps(connection))
    assert set(exec_env(EksBackend(cluster).kube_config())) == {"PYTHONPATH"}
