"""A multi-node training's Job, its pods and its headless Service are all found by the run label and all deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.testing import EmulatorProcess, eventually

from gpuflow.kube.cluster import api_client, apply, delete_objects, labelled_objects, pod_placement, scheduled_pods
from gpuflow.kube.multinode import rendezvous_service, training_job
from gpuflow.kube.placement import placement

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


def test_the_run_label_finds_the_job_and_its_service_and_deleting_them_leaves_no_pod(client: Any) -> None:
    from kubernetes.client import CoreV1Api

    job = training_job(
        name="train-mn",
        namespace="default",
        image="python:3.11",
        placement=placement("gcp", "pool-a", "L4", 1, "on-demand"),
        labels=LABELS,
        output_uri="/tmp/unused",
        nodes=2,
        command=["python", "-m", "gpuflow_training"],
    )
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
