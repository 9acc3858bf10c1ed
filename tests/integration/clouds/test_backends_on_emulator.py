"""Every backend against the emulator's cloud APIs through the official SDKs, built from Airflow connections."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually
from kubernetes import client as k8s

from gpuflow.clouds.azure import AksBackend
from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolSpec, NodePoolStatus, PoolState
from gpuflow.kube.cluster import api_client
from gpuflow.operators.nodepool import install_device_plugin
from tests.support.offers import cluster_of, one_gpu_pool_spec


def spec_on(cloud: str, run_id: str = "manual__1") -> NodePoolSpec:
    return one_gpu_pool_spec(cloud, dag_id="backend_test", run_id=run_id)


def wait_for(backend: Any, spec: NodePoolSpec, states: set[PoolState], timeout: float = 30) -> NodePoolStatus:
    deadline = time.monotonic() + timeout
    while True:
        status: NodePoolStatus = backend.get_node_pool(spec.ref)
        if status.state in states or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_create_ready_nodes_visible_list_delete(cloud: str, clouds_emulator: EmulatorProcess) -> None:
    backend = backend_for(cluster_of(cloud))
    spec = spec_on(cloud)
    assert backend.create_node_pool(spec) == spec.ref
    assert backend.create_node_pool(spec) == spec.ref  # get-or-create
    assert wait_for(backend, spec, {PoolState.READY}).state is PoolState.READY
    nodes = k8s.CoreV1Api(api_client(backend.kube_config())).list_node(
        label_selector=f"{naming.RUN_LABEL}={naming.run_key('backend_test', 'manual__1')}"
    )
    assert len(nodes.items) == 1
    node = nodes.items[0]
    # A GPU appears once a device plugin runs: shipped by the node image (EKS Bottlerocket, GKE), else gpuflow's add-on.
    install_device_plugin(spec.cluster, spec.resource_name)
    core = k8s.CoreV1Api(api_client(backend.kube_config()))
    eventually(
        lambda: core.read_node(node.metadata.name).status.allocatable.get(spec.resource_name) == "1",
        what=f"{node.metadata.name} to advertise {spec.resource_name}",
    )
    assert any(t.key == spec.resource_name and t.effect == "NoSchedule" for t in node.spec.taints)
    run = {naming.RUN_LABEL: naming.run_key("backend_test", "manual__1")}
    assert [s.ref for s in backend.list_node_pools(run)] == [spec.ref]
    assert backend.list_node_pools({naming.RUN_LABEL: "someone-else"}) == []
    backend.delete_node_pool(spec.ref)
    assert wait_for(backend, spec, {PoolState.GONE}).state is PoolState.GONE
    backend.delete_node_pool(spec.ref)  # already gone: still a success


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_label_node_pool_adds_a_label_and_keeps_the_others(cloud: str, clouds_emulator: EmulatorProcess) -> None:
    backend = backend_for(cluster_of(cloud))
    spec = spec_on(cloud)
    backend.create_node_pool(spec)
    wait_for(backend, spec, {PoolState.READY})
    backend.label_node_pool(spec.ref, {naming.EXPIRES_LABEL: "1900000000"})
    (status,) = backend.list_node_pools({naming.EXPIRES_LABEL: "1900000000"})
    assert status.labels == {**spec.labels, naming.EXPIRES_LABEL: "1900000000"}
    assert (status.instance_type, status.node_count, status.spot) == (spec.instance_type, 1, False)
    nodes = k8s.CoreV1Api(api_client(backend.kube_config())).list_node(
        label_selector=f"{naming.EXPIRES_LABEL}=1900000000"
    )
    assert len(nodes.items) == 1


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_resize_node_pool_brings_the_pool_to_the_count_asked(cloud: str, clouds_emulator: EmulatorProcess) -> None:
    """The watchdog's repair of a kept endpoint's pool: each cloud's own scaling call, read back as the pool's count
    and as Ready nodes in Kubernetes."""
    backend = backend_for(cluster_of(cloud))
    spec = spec_on(cloud)
    backend.create_node_pool(spec)
    wait_for(backend, spec, {PoolState.READY})
    backend.resize_node_pool(spec.ref, 2)
    eventually(lambda: backend.get_node_pool(spec.ref).node_count == 2, what=f"{cloud} pool count 2")
    core = k8s.CoreV1Api(api_client(backend.kube_config()))
    selector = f"{naming.RUN_LABEL}={naming.run_key('backend_test', 'manual__1')}"
    eventually(lambda: len(core.list_node(label_selector=selector).items) == 2, what=f"{cloud} second node")


@pytest.mark.parametrize("clouds_emulator", ["async-stockout-everywhere"], indirect=True)
@pytest.mark.parametrize(
    ("cloud", "codes"),
    [
        ("aws", {"InsufficientInstanceCapacity"}),
        ("gcp", {"ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "GCE_STOCKOUT"}),
        ("azure", {"AllocationFailed"}),
    ],
)
def test_async_stockout_is_read_as_capacity_on_every_cloud(
    clouds_emulator: EmulatorProcess, cloud: str, codes: set[str]
) -> None:
    backend = backend_for(cluster_of(cloud))
    spec = spec_on(cloud)
    backend.create_node_pool(spec)
    status = wait_for(backend, spec, {PoolState.FAILED, PoolState.READY})
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.kind, status.error.scope) == (ErrorKind.CAPACITY, Scope.OFFER)
    assert status.error.code in codes


@pytest.mark.parametrize("clouds_emulator", ["quota-exhausted-gcp"], indirect=True)
def test_global_gpu_quota_is_read_as_cloud_wide(clouds_emulator: EmulatorProcess) -> None:
    with pytest.raises(CloudError) as info:
        backend_for(cluster_of("gcp")).create_node_pool(spec_on("gcp"))
    assert (info.value.kind, info.value.scope) == (ErrorKind.QUOTA, Scope.CLOUD)
    assert info.value.code == "GPUS_ALL_REGIONS"


@pytest.mark.parametrize("clouds_emulator", ["quota-exhausted-gcp-region"], indirect=True)
def test_regional_gpu_quota_is_a_quota_of_that_gpu_there_not_refused_credentials(
    clouds_emulator: EmulatorProcess,
) -> None:
    """GKE's 403 PERMISSION_DENIED "Insufficient regional quota" carries no ErrorInfo; read as a 403 alone it
    would be an AUTH failure and block every GCP region for the run."""
    with pytest.raises(CloudError) as info:
        backend_for(cluster_of("gcp")).create_node_pool(spec_on("gcp"))
    assert (info.value.kind, info.value.scope) == (ErrorKind.QUOTA, Scope.FAMILY)  # L4s there, not the region
    assert info.value.code == "NVIDIA_L4_GPUS"


@pytest.mark.parametrize("clouds_emulator", ["busy-gke-cluster"], indirect=True)
def test_a_busy_gke_cluster_is_a_transient_refusal(clouds_emulator: EmulatorProcess) -> None:
    backend = backend_for(cluster_of("gcp"))
    spec = spec_on("gcp")
    with pytest.raises(CloudError) as info:
        backend.create_node_pool(spec)
    assert (info.value.kind, info.value.code) == (ErrorKind.TRANSIENT, "FAILED_PRECONDITION")
    backend.create_node_pool(spec)
    wait_for(backend, spec, {PoolState.READY})
    with pytest.raises(CloudError) as info:
        backend.delete_node_pool(spec.ref)
    assert info.value.kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize("clouds_emulator", ["stockout-aws-while-creating"], indirect=True)
def test_an_eks_launch_failure_seen_while_creating_is_a_stockout_now(clouds_emulator: EmulatorProcess) -> None:
    """EKS keeps the group CREATING for ~20 minutes before CREATE_FAILED; its health says why long before."""
    backend = backend_for(cluster_of("aws"))
    spec = spec_on("aws")
    backend.create_node_pool(spec)
    status = wait_for(backend, spec, {PoolState.FAILED, PoolState.READY}, timeout=10)
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.kind, status.error.scope) == (
        "InsufficientInstanceCapacity",
        ErrorKind.CAPACITY,
        Scope.OFFER,
    )


@pytest.mark.parametrize("clouds_emulator", ["eks-nodes-cannot-join"], indirect=True)
def test_eks_nodes_that_cannot_join_are_a_misconfiguration_with_its_fix(clouds_emulator: EmulatorProcess) -> None:
    backend = backend_for(cluster_of("aws"))
    spec = spec_on("aws")
    backend.create_node_pool(spec)
    status = wait_for(backend, spec, {PoolState.FAILED, PoolState.READY})
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.kind) == ("NodeCreationFailure", ErrorKind.INVALID)
    assert "settings.node_role_arn" in status.error.message  # names what to fix


@pytest.mark.parametrize("clouds_emulator", ["aks-refusals"], indirect=True)
@pytest.mark.parametrize(
    ("name", "code", "kind", "scope"),
    [
        ("quotatpl1", "QuotaExceeded", ErrorKind.QUOTA, Scope.FAMILY),  # nested in InvalidTemplateDeployment
        ("vcpuquota1", "ErrCode_InsufficientVCPUQuota", ErrorKind.QUOTA, Scope.FAMILY),
        ("sizeblock1", "BadRequest", ErrorKind.QUOTA, Scope.OFFER),  # the size is barred: a long block, not a stop
    ],
)
def test_aks_refusals_are_read_from_their_words_and_details(
    clouds_emulator: EmulatorProcess, name: str, code: str, kind: ErrorKind, scope: Scope
) -> None:
    spec = dataclasses.replace(spec_on("azure"), name=name)
    with pytest.raises(CloudError) as info:
        backend_for(cluster_of("azure")).create_node_pool(spec)
    assert (info.value.code, info.value.kind, info.value.scope) == (code, kind, scope)


def test_azure_sends_long_running_operations_without_following_them(clouds_emulator: EmulatorProcess) -> None:
    """The pipeline polls the pool itself; the SDK's default poller would poll ARM from a thread per call."""
    backend = backend_for(cluster_of("azure"))
    spec = spec_on("azure")
    backend.create_node_pool(spec)
    wait_for(backend, spec, {PoolState.READY})
    backend.label_node_pool(spec.ref, {naming.EXPIRES_LABEL: "1900000000"})
    backend.delete_node_pool(spec.ref)
    wait_for(backend, spec, {PoolState.GONE})
    time.sleep(2)  # azure-core's poller would have asked for the operations' status by now
    operations = {call["operation"] for call in clouds_emulator.calls("azure")}
    assert "OperationStatus" not in operations, operations


def test_azure_tags_the_pool_with_arm_safe_names_and_labels_the_nodes_with_ours(
    clouds_emulator: EmulatorProcess,
) -> None:
    backend = AksBackend(cluster_of("azure"))
    spec = spec_on("azure")
    backend.create_node_pool(spec)
    pool = backend.client.agent_pools.get(backend.resource_group, backend.cluster.name, spec.name)
    assert pool.tags == {key.replace("/", "_"): value for key, value in spec.labels.items()}
    assert pool.node_labels == spec.labels
    backend.delete_node_pool(spec.ref)
