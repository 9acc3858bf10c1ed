"""Training across nodes as it runs: the Indexed Job and headless Service of ``kube/multinode.py`` created on the
pool, waited for on the triggerer (``TrainingJobTrigger``), and removed, with every rank's log and the Job's reason
when it fails, and whether a lost node (a spot preemption) failed it, which ``TrainOperator`` recovers from as it does
for one pod: a new Job on the pool it gets back resumes from the last checkpoint.

Why not the provider's ``KubernetesJobOperator``: it renames the Job (a ``job-`` prefix, a random suffix) while the
ranks find rank 0 by the Job's own name (``NAME-0.NAME``), it makes no headless Service and leaves the finished
Job behind, and its deferrable wait reaches the cluster through a connection only (see the trigger); and
``TrainOperator``'s finished-training check and run state live on a KubernetesPodOperator, which a second operator
would have to repeat. So the manifests are applied here as they are, and a small trigger watches the Job's
``Complete`` and ``Failed`` conditions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from gpuflow.clouds.access import kube_config
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.core.recovery import PodView
from gpuflow.kube.cluster import KubeObject, api_client, delete_objects, scheduled_pods
from gpuflow.kube.multinode import JOB_NAME_LABEL, index_of
from gpuflow.kube.training import KPO_CONTAINER
from gpuflow.operators.recovering import pod_view, pool_loss

# How many of a failed rank's last log lines go into the task's error.
FAILED_LOG_LINES = 10
# A pod's terminationGracePeriodSeconds when it sets none, and how long past it an earlier try's rank may take to end.
DEFAULT_GRACE_S = 30
GRACE_MARGIN_S = 30


def start(client: Any, job: Mapping[str, Any], service: Mapping[str, Any], write: Callable[[str], object]) -> None:
    """Create the Service, then the Job; a Job of the same name left by an earlier try goes first, and its pods too
    (``_wait_gone``): its pod template cannot be replaced, and its ranks would join the new ones."""
    from kubernetes import client as k8s
    from kubernetes import utils

    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    remove(client, namespace, name)
    _wait_gone(client, namespace, name, write)
    utils.create_from_dict(client, dict(service))
    k8s.BatchV1Api(client).create_namespaced_job(namespace, dict(job))


def _wait_gone(client: Any, namespace: str, name: str, write: Callable[[str], object]) -> None:
    """Wait until an earlier try's ranks have ended. A terminating rank keeps its name, since the headless Service
    publishes not-ready addresses (its EndpointSlice endpoint stays ``ready``: kubernetes
    staging/src/k8s.io/endpointslice/utils.go, ``podToEndpoint``), and its node's accelerators, so a new rank could
    meet the old rank 0. A rank still there after its grace period and a margin (a node that no longer answers
    cannot confirm its end) is force-deleted, as kubernetes.io's "Force Delete StatefulSet Pods" says to."""
    from kubernetes import client as k8s

    pods = _pods(client, namespace, name)
    if not pods:
        return
    grace = max(pod.spec.termination_grace_period_seconds or DEFAULT_GRACE_S for pod in pods)
    write(f"waiting up to {grace + GRACE_MARGIN_S}s for {len(pods)} pod(s) of the earlier try of Job {name} to end")
    deadline = time.monotonic() + grace + GRACE_MARGIN_S
    while (pods := _pods(client, namespace, name)) and time.monotonic() < deadline:
        time.sleep(1)
    for pod in pods:
        write(f"pod {pod.metadata.name} did not end within its grace period: force-deleting it")
        with contextlib.suppress(k8s.ApiException):
            k8s.CoreV1Api(client).delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def finish(
    client: Any, namespace: str, name: str, event: Mapping[str, Any], write: Callable[[str], object]
) -> str | None:
    """Log every rank's output, remove the Job (with its pods) and the Service, and say why the Job failed (its
    condition's reason and each failed rank's exit and last lines); None when it completed."""
    try:
        failed_ranks = [_rank_report(client, namespace, pod, write) for pod in _pods(client, namespace, name)]
    finally:
        remove(client, namespace, name)
    if event.get("status") == "success":
        return None
    condition = f"{event.get('reason') or 'Failed'} ({event.get('message') or 'no message'})"
    return "; ".join([condition, *(report for report in failed_ranks if report)])


def node_loss(pool: PoolHandoff, namespace: str, name: str) -> str | None:
    """Why the failed Job's end was its nodes' doing, read before the Job is removed: the first of its pods whose
    end a node caused (the pod's own status, or the node it ran on gone, recreated, cordoned or not Ready:
    ``recovering.pool_loss``), or the pool's nodes alone when every pod is gone (evicted); None when the nodes are
    not to blame (a rank failed by itself: the run fails, as a one-pod training's own failure does)."""
    client = api_client(kube_config(pool.cluster))
    pods = _pods(client, namespace, name)
    if not pods:
        return pool_loss(pool, PodView(gone=True))
    found = (why for pod in pods if (why := pool_loss(pool, pod_view(pod), (namespace, pod.metadata.name))))
    return next(found, None) or _deleted_pods_loss(client, pool, namespace, name, {p.metadata.name for p in pods})


def _deleted_pods_loss(client: Any, pool: PoolHandoff, namespace: str, name: str, present: set[str]) -> str | None:
    """A failed Job deletes its active pods: when a rank on a healthy node fails first (its peer vanished), the pod
    of the lost node is gone before anything reads it, and the cloud may have recreated that node already. Each
    such pod of this Job still has its scheduler event: the node it was placed on, gone or recreated since, is the
    loss."""
    since = _created_at(client, namespace, name)
    for pod in sorted(set(scheduled_pods(client, namespace, f"{name}-", since)) - present):
        if why := pool_loss(pool, PodView(gone=True), (namespace, pod)):
            return why
    return None


def _created_at(client: Any, namespace: str, name: str) -> Any:
    from kubernetes import client as k8s

    return k8s.BatchV1Api(client).read_namespaced_job(name, namespace).metadata.creation_timestamp


def remove(client: Any, namespace: str, name: str) -> None:
    """Delete the Job (its pods go with it) and its Service; either already gone counts as removed."""
    delete_objects(client, namespace, [KubeObject("Job", name), KubeObject("Service", name)])


def _pods(client: Any, namespace: str, name: str) -> list[Any]:
    from kubernetes import client as k8s

    pods = k8s.CoreV1Api(client).list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items
    return sorted(pods, key=lambda pod: index_of(pod.metadata.annotations) or 0)


def _rank_report(client: Any, namespace: str, pod: Any, write: Callable[[str], object]) -> str | None:
    """Write the rank's log into the task's; for a failed rank, its exit and last lines (the error's detail)."""
    from kubernetes import client as k8s

    rank = index_of(pod.metadata.annotations)
    text = (
        k8s.CoreV1Api(client)
        .read_namespaced_pod_log(pod.metadata.name, namespace, container=KPO_CONTAINER, _preload_content=False)
        .data.decode(errors="replace")
    )
    for line in text.splitlines():
        write(f"[node {rank}] {line}")
    if pod.status is None or pod.status.phase != "Failed":
        return None
    terminated = next(
        (s.state.terminated for s in pod.status.container_statuses or [] if s.state and s.state.terminated), None
    )
    exit_code = terminated.exit_code if terminated is not None else "?"
    last = " | ".join(text.strip().splitlines()[-FAILED_LOG_LINES:])
    return f"node {rank} (pod {pod.metadata.name}) exited {exit_code}: {last or 'no output'}"
