"""The pool the product asks for holds the serving image: issue 14, item 2 ("disks that hold the image and the
model"). Before the fix, an EKS node group came with EKS's default 20 GiB disk and the ~25 GB vLLM image could
not be pulled on it ("no space left on device")."""

from __future__ import annotations

import time

import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually
from kubernetes import client as k8s

from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.job import JobRequest
from gpuflow.core.nodepool import PoolState
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.cluster import api_client, apply
from gpuflow.kube.placement import placement_for_pool
from gpuflow.kube.serving import EndpointSpec, endpoint_manifests
from gpuflow.operators.nodepool import install_device_plugin
from tests.support.offers import one_gpu_pool_spec

pytestmark = pytest.mark.timeout(120)
SERVING_IMAGE = str(JobRequest.__dataclass_fields__["serving_image"].default)  # what a run serves by default


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_the_serving_pod_pulls_its_image_on_the_pool_the_product_creates(
    cloud: str, clouds_emulator: EmulatorProcess
) -> None:
    spec = one_gpu_pool_spec(cloud, dag_id="disk_test", run_id="manual__1")
    backend = backend_for(spec.cluster)
    backend.create_node_pool(spec)
    deadline = time.monotonic() + 30
    while backend.get_node_pool(spec.ref).state is not PoolState.READY and time.monotonic() < deadline:
        time.sleep(0.3)
    install_device_plugin(spec.cluster, spec.resource_name)  # as wait_node_pool does: AKS nodes ship none
    endpoint = EndpointSpec(
        name="disk",
        namespace="default",
        image=SERVING_IMAGE,
        options=VllmOptions("/models/tiny", "tiny"),
        placement=placement_for_pool(spec),
        labels={},
    )
    api = api_client(backend.kube_config())
    core = k8s.CoreV1Api(api)
    (node,) = core.list_node(label_selector=f"{naming.RUN_LABEL}={naming.run_key('disk_test', 'manual__1')}").items
    assert int(node.status.capacity["ephemeral-storage"]) >= spec.disk_gib * 2**30  # the backend asked for it
    apply(api, endpoint_manifests(endpoint))

    def vllm_started_or_failed() -> k8s.V1ContainerState | None:
        pods = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=disk").items
        statuses = [s for p in pods for s in p.status.container_statuses or []]
        state = statuses[0].state if statuses else None
        pulled_or_failed = state is not None and (state.running or state.terminated or _err_image_pull(state))
        return state if pulled_or_failed else None

    state = eventually(vllm_started_or_failed, timeout=60, what="the vLLM container to start or fail its pull")
    assert not _err_image_pull(state), f"the vLLM image did not fit the {cloud} pool's disk: {state.waiting.message}"


def _err_image_pull(state: k8s.V1ContainerState) -> bool:
    return state.waiting is not None and state.waiting.reason == "ErrImagePull"
