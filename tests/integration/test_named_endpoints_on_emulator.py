"""A named endpoint's cluster work on the emulator: found by its front Service, old revisions retired, deleted whole."""

from __future__ import annotations

from typing import Any

from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.clouds.access import kube_config
from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster, load_clusters
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec
from gpuflow.kube.cluster import KubeObject, api_client, apply, label_objects
from gpuflow.named_endpoints import delete_endpoint, find_live_endpoint, retire_old_revisions
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
