"""A multi-node training's Job, its pods and its headless Service: found by the run label, all deleted, and a new try
started only once the earlier one's ranks are gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.testing import EmulatorProcess, eventually

from gpuflow.kube.cluster import api_client, apply, delete_objects, labelled_objects, pod_placement, scheduled_pods
from gpuflow.kube.multinode import JOB_NAME_LABEL, rendezvous_service, training_job
from gpuflow.kube.placement import placement
from gpuflow.operators import training_job as training_job_run

pytestmark = pytest.mark.timeout(60)

LABELS = {"gpuflow.io/managed": "true", "gpuflow.io/run": "multinode0001"}
GPU_NODES = [
    {
        "name": f"gpu-{i}",
        "labels": {"cloud.google.com/gke-nodepool": "pool-a", "cloud.google.com/gke-accelerator": "nvidia-l4"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        "allocatable": {"nvidia.com/gpu": "1"},
    }
    for i in range(2)
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    with EmulatorProcess.start(tmp_path / "emulator", nodes=GPU_NODES) as running:
        yield api_client(yaml.safe_load(running.kubeconfig().read_text()))


def _job(command: list[str]) -> dict[str, Any]:
    return training_job(
        name="train-mn",
        namespace="default",
        image="python:3.11",
        placement=placement("gcp", "pool-a", "L4", 1, "on-demand"),
        labels=LABELS,
        output_uri="/tmp/unused",
        nodes=2,
        command=command,
    )


def test_the_run_label_finds_the_job_and_its_service_and_deleting_them_leaves_no_pod(client: Any) -> None:
    from kubernetes.client import CoreV1Api

    job = _job(["python", "-m", "gpuflow_training"])
    apply(client, [rendezvous_service(name="train-mn", namespace="default", labels=LABELS), job])
    core = CoreV1Api(client)
    selector = "gpuflow.io/run=multinode0001"

    def placed() -> set[str]:
        return {pod.spec.node_name for pod in core.list_namespaced_pod("default", label_selector=selector).items}

    assert eventually(lambda: placed() == {"gpu-0", "gpu-1"}, what="one rank on each GPU node")

    found = labelled_objects(client, "default", selector)
    judged = [obj for obj in found if not obj.owned]
    assert sorted(obj.ref for obj in judged) == ["Job/train-mn", "Service/train-mn"]
    delete_objects(client, "default", judged)

    eventually(lambda: not labelled_objects(client, "default", selector), what="nothing left")
    # The deleted ranks' placements outlive them (a node lost under a failed Job is judged from them).
    ranks = scheduled_pods(client, "default", "train-mn-", since=None)
    assert len(ranks) == 2
    assert {placement_of[0] for rank in ranks if (placement_of := pod_placement(client, "default", rank))} == {
        "gpu-0",
        "gpu-1",
    }
    assert scheduled_pods(client, "default", "train-mn-", since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_a_new_try_starts_only_once_the_earlier_tries_ranks_are_gone(client: Any) -> None:
    """A terminating rank keeps its name (the headless Service publishes not-ready addresses) and its node's
    accelerators: a new try's ranks would meet the old rank 0. So ``start`` waits for the earlier try's pods."""
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(client)
    service = rendezvous_service(name="train-mn", namespace="default", labels=LABELS)

    def ranks() -> list[Any]:
        return list(core.list_namespaced_pod("default", label_selector=f"{JOB_NAME_LABEL}=train-mn").items)

    def try_running(code: str) -> dict[str, Any]:
        job = _job(["python", "-m", "gpuflow_training"])
        job["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-c", code]
        job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 4
        return job

    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    training_job_run.start(client, try_running(stubborn), service, print)
    eventually(lambda: len([p for p in ranks() if p.status.phase == "Running"]) == 2, what="2 ranks running")
    old = {p.metadata.uid for p in ranks()}

    training_job_run.start(client, try_running("pass"), service, print)
    assert not old & {p.metadata.uid for p in ranks()}
