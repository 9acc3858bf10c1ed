"""A named endpoint's cluster work on the emulator: found by its front Service, old revisions retired, deleted whole,
and what an adapter run needs of it checked at plan."""

from __future__ import annotations

from typing import Any

import pytest
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.clouds.access import kube_config
from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster, load_clusters
from gpuflow.core.errors import RequestError
from gpuflow.core.job import JobRequest
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.cluster import KubeObject, api_client, apply, label_objects
from gpuflow.kube.placement import placement
from gpuflow.kube.serving import EndpointSpec, deployment_manifest, front_service_manifest
from gpuflow.named_endpoints import delete_endpoint, find_live_endpoint, retire_old_revisions
from gpuflow.operators.plan import PlanOperator
from gpuflow.operators.runtime import JOB_NAMESPACE

DAG = "gpu_train_and_serve"
OLD, NEW = naming.run_key(DAG, "old"), naming.run_key(DAG, "new")
ENDPOINT = {naming.ENDPOINT_LABEL: "chat"}
CHOICE = {
    "cloud": "gcp",
    "region": "us-central1",
    "availability_zone": "us-central1-a",
    "instance_type": "g2-standard-4",
    "accelerator": "L4",
    "accelerator_count": 1,
    "nodes": 1,
    "capacity_type": "on-demand",
}


def service(name: str, run_id: str, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": JOB_NAMESPACE,
            "labels": {**naming.ownership_labels(DAG, run_id), **labels},
        },
        "spec": {"selector": selector, "ports": [{"port": 8000}]},
    }


def revision(gke: Cluster, run_id: str, *, stamped: bool) -> tuple[NodePoolRef, dict[str, Any]]:
    """A revision's pool and Service; ``stamped``: as its teardown left it, labelled with the endpoint."""
    spec = NodePoolSpec.from_choice(CHOICE, gke, dag_id=DAG, run_id=run_id)
    backend_for(gke).create_node_pool(spec)
    if stamped:
        backend_for(gke).label_node_pool(spec.ref, ENDPOINT)
    name = f"chat-{run_id}"
    return spec.ref, service(name, run_id, ENDPOINT if stamped else {}, {naming.REVISION_LABEL: name})


def test_a_promotion_retires_every_other_revision_and_the_delete_dag_takes_the_rest(
    clouds_emulator: EmulatorProcess,
) -> None:
    configured = load_clusters()
    gke = configured.for_region("gcp", "us-central1")
    old_pool, old_service = revision(gke, "old", stamped=True)
    new_pool, new_service = revision(gke, "new", stamped=False)
    front = service("chat", "new", ENDPOINT, {naming.REVISION_LABEL: "chat-new"})
    apply(api_client(kube_config(gke)), [old_service, new_service, front])

    live = find_live_endpoint("chat", configured.by_region.values(), JOB_NAMESPACE)
    assert live is not None
    assert (live.cluster, live.revision, live.run_key) == (gke, "chat-new", NEW)
    assert find_live_endpoint("other", configured.by_region.values(), JOB_NAMESPACE) is None

    retired = retire_old_revisions("chat", gke, JOB_NAMESPACE, NEW, timeout_s=60, poll_interval_s=0.2)
    assert retired.problems == []
    assert retired.run_keys == {OLD}
    assert retired.swept.deleted_objects == ["Service/chat-old"]
    assert retired.swept.deleted_pools == [old_pool]
    left = ["service/chat", "service/chat-new", f"pool/{new_pool.name}"]
    assert sorted(r for r in clouds_emulator.labelled(naming.RUN_LABEL, NEW) if not r.startswith("node/")) == sorted(
        left
    )

    backend_for(gke).label_node_pool(new_pool, ENDPOINT)  # as the promoting run's teardown stamps them
    label_objects(api_client(kube_config(gke)), JOB_NAMESPACE, [KubeObject("Service", "chat-new")], ENDPOINT)
    deleted = delete_endpoint("chat", configured.by_region.values(), JOB_NAMESPACE, timeout_s=60, poll_interval_s=0.2)
    assert deleted.problems == []
    assert sorted(deleted.swept.deleted_objects) == ["Service/chat", "Service/chat-new"]
    assert deleted.swept.deleted_pools == [new_pool]
    assert clouds_emulator.labelled(naming.ENDPOINT_LABEL, "chat") == []


def _revision_serving(gke: Cluster, run_id: str, *, lora: bool) -> None:
    """A revision's Deployment as ``deploy_endpoint`` applies it, behind the endpoint's front Service."""
    options = VllmOptions(f"gs://bucket/{run_id}/model", "tiny", enable_lora=lora, max_lora_rank=8)
    spec = EndpointSpec(
        name=f"chat-{run_id}",
        namespace=JOB_NAMESPACE,
        image="vllm/vllm-openai:v0.32.0",
        options=options,
        placement=placement("gcp", "pool-x", "L4", 1, "on-demand"),
        labels=naming.ownership_labels(DAG, run_id),
        front="chat",
        adapters_uri="gs://bucket/endpoints/chat/adapters" if lora else None,
    )
    apply(api_client(kube_config(gke)), [deployment_manifest(spec, with_hf_token=False), front_service_manifest(spec)])


def test_an_adapter_is_planned_only_onto_a_live_endpoint_that_loads_adapters_of_its_rank(
    clouds_emulator: EmulatorProcess,
) -> None:
    configured = load_clusters()
    gke = configured.for_region("gcp", "us-central1")
    plan = PlanOperator(task_id="plan", for_provisioning=True)

    def adapter_base(rank: int) -> dict[str, str] | None:
        job = JobRequest.from_mapping({"accelerator": "L4", "endpoint_name": "chat", "adapter_rank": rank})
        return plan._adapter_base(job, find_live_endpoint("chat", configured.by_region.values(), JOB_NAMESPACE))

    with pytest.raises(RequestError, match="0 until endpoint chat exists: create it with a whole-model run"):
        adapter_base(4)
    _revision_serving(gke, "plain", lora=False)
    with pytest.raises(RequestError, match=r"serves without LoRA adapters \(revision chat-plain\); promote a whole"):
        adapter_base(4)
    _revision_serving(gke, "lora", lora=True)
    with pytest.raises(RequestError, match="at most 8, the max_lora_rank endpoint chat serves"):
        adapter_base(16)
    assert adapter_base(8) == {
        "revision": "chat-lora",
        "model_uri": "gs://bucket/lora/model",
        "adapters_uri": "gs://bucket/endpoints/chat/adapters",
    }
