"""The multi-node training Job and its headless Service: schema-valid, indexed, found by name, placed on the pool."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.torchrun import torchrun_command
from gpuflow.kube.multinode import rendezvous_service, training_job
from gpuflow.kube.placement import placement
from tests.unit.kube.schema import assert_valid

LABELS = {"gpuflow.io/managed": "true", "gpuflow.io/run": "0123456789abcdef"}


def _job(cloud: str = "gcp", count: int = 8, nodes: int = 4, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "train-abc",
        "namespace": "gpuflow",
        "image": "ghcr.io/example/train:1.0",
        "placement": placement(cloud, "pool-a", "H100", count, "on-demand"),
        "labels": LABELS,
        "output_uri": "gs://bucket/runs/abc",
        "nodes": nodes,
        "command": ["python", "-m", "gpuflow_training"],
        "args": ["--steps", "10"],
    }
    return training_job(**(arguments | overrides))


def _env(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_training_job_and_service_are_schema_valid_for_every_cloud(cloud: str) -> None:
    assert_valid(_job(cloud))
    assert_valid(rendezvous_service(name="train-abc", namespace="gpuflow", labels=LABELS))


def test_training_job_is_indexed_one_pod_per_node_and_fails_on_the_first_failed_rank() -> None:
    spec = _job(nodes=4)["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed",
        4,
        4,
        0,
    )
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["template"]["metadata"]["labels"] == LABELS  # the run label the teardown sweeps by


def test_every_rank_finds_rank_0_through_the_headless_service() -> None:
    job = _job(nodes=4, count=8)
    service = rendezvous_service(name="train-abc", namespace="gpuflow", labels=LABELS)
    env = _env(job)
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"] == "train-abc"
    assert env["PET_MASTER_ADDR"] == "train-abc-0.train-abc"
    assert (env["PET_NNODES"], env["PET_NPROC_PER_NODE"], env["PET_MASTER_PORT"]) == ("4", "8", "29500")
    assert env["PET_NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert env["OUTPUT_URI"] == "gs://bucket/runs/abc"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "train-abc"}


def test_every_pod_holds_the_pools_placement_and_all_its_accelerators() -> None:
    pod_spec = _job("gcp", count=8)["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "8"}}
    assert pod_spec["nodeSelector"]["cloud.google.com/gke-nodepool"] == "pool-a"
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod_spec[
        "tolerations"
    ]
    assert container["command"] == ["python", "-m", "torch.distributed.run", "-m", "gpuflow_training"]
    assert container["args"] == ["--steps", "10"]


@pytest.mark.parametrize(
    ("command", "launched"),
    [
        (["python", "-m", "train", "--x"], ["python", "-m", "torch.distributed.run", "-m", "train", "--x"]),
        (["python3", "train.py"], ["python3", "-m", "torch.distributed.run", "train.py"]),
    ],
)
def test_torchrun_starts_the_same_python_program(command: list[str], launched: list[str]) -> None:
    assert torchrun_command(command) == launched


@pytest.mark.parametrize("command", [["bash", "run.sh"], ["python"], ["python", "-c", "print(1)"]])
def test_a_command_torchrun_cannot_start_is_refused_naming_the_field(command: list[str]) -> None:
    with pytest.raises(RequestError, match=r"training_command.*python -m MODULE"):
        torchrun_command(command)


@pytest.mark.parametrize(("field", "overrides"), [("nodes", {"nodes": 1}), ("name", {"name": "Train_1"})])
def test_a_bad_job_is_refused_naming_the_field(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(RequestError, match=field):
        _job(**overrides)
