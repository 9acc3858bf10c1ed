"""Training across nodes: one Indexed Job of N pods, one per node, and the headless Service that names them.

Why this shape: an Indexed Job gives every pod a stable index (its torchrun node rank) and the hostname
``JOB-INDEX``; a headless Service named as the pods' ``subdomain`` makes ``JOB-0.JOB`` resolve to rank 0's pod,
the rendezvous address (kubernetes.io, "Job with Pod-to-Pod Communication"). ``backoffLimit: 0``: a rank that fails
leaves the others waiting at their next collective, so the first failure fails the Job, which stops the rest.
torchrun reads its options from ``PET_*`` variables, so the node rank comes from the pod's index annotation through
the downward API and the user's command needs no shell. Every pod holds the pool placement of the one-pod
training and starts one process per accelerator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gpuflow.core.errors import RequestError
from gpuflow.core.torchrun import RENDEZVOUS_PORT, nodes_env, torchrun_command
from gpuflow.kube.objects import SecretKeyRef, dns1035_label
from gpuflow.kube.placement import Placement
from gpuflow.kube.training import training_pod

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on a Job's pods by the API server (Kubernetes >= 1.27)


def index_of(annotations: Mapping[str, str] | None) -> int | None:
    """A Job pod's completion index (its node rank), from the annotation the Job controller sets."""
    value = (annotations or {}).get(INDEX_ANNOTATION)
    return int(value) if value is not None else None


def rendezvous_address(name: str) -> str:
    """Rank 0's pod, through the headless Service of the same name."""
    return f"{name}-0.{name}"


def training_job(
    *,
    name: str,
    namespace: str,
    image: str,
    placement: Placement,
    labels: Mapping[str, str],
    output_uri: str,
    nodes: int,
    command: Sequence[str],
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, SecretKeyRef] | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job running ``command`` under torchrun on ``nodes`` pods of the pool, ranks found by name."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise RequestError("nodes", nodes, "2 or more (one node trains as a single pod)")
    longest_host = f"{name}-{nodes - 1}"
    dns1035_label("name", name)
    dns1035_label("name", longest_host)  # every pod's hostname must be a DNS label too
    launcher = nodes_env(nodes, placement.accelerator_count, rendezvous_address(name))
    pod = training_pod(
        name=name,
        namespace=namespace,
        image=image,
        placement=placement,
        labels=labels,
        output_uri=output_uri,
        command=torchrun_command(command),
        args=args,
        env={**(env or {}), **launcher},
        secret_env=secret_env,
    )
    (container,) = pod["spec"]["containers"]
    rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}
    container["env"].append({"name": "PET_NODE_RANK", "valueFrom": rank})
    container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": pod["metadata"],
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": dict(labels)}, "spec": {**pod["spec"], "subdomain": name}},
        },
    }


def rendezvous_service(*, name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The headless Service that gives the Job's pods their names; listed before readiness, since a rank must find
    rank 0 while both are still starting."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": dns1035_label("name", name), "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: name},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
        },
    }
