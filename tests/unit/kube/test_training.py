"""The training pod template for KubernetesPodOperator: schema-valid, placed on the pool, secrets by reference."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.kube.objects import SecretKeyRef
from gpuflow.kube.placement import placement
from gpuflow.kube.training import one_node_training_pod, training_pod
from tests.unit.kube.schema import assert_valid

LABELS = {"gpuflow.io/managed": "true", "gpuflow.io/run": "0123456789abcdef"}


def _pod(cloud: str = "aws", count: int = 1, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "train-abc",
        "namespace": "gpuflow",
        "image": "ghcr.io/example/train:1.0",
        "placement": placement(cloud, "pool-a", "H100", count, "spot"),
        "labels": LABELS,
        "output_uri": "s3://bucket/runs/abc",
        "command": ["python", "-m", "train"],
        "args": ["--epochs", "1"],
        "env": {"EPOCHS": "1"},
        "secret_env": {"WANDB_API_KEY": SecretKeyRef("wandb", "api-key")},
    }
    return training_pod(**(arguments | overrides))


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize("count", [1, 8])
def test_training_pod_is_schema_valid_for_every_cloud(cloud: str, count: int) -> None:
    assert_valid(_pod(cloud, count))


def test_training_pod_has_kpo_base_container_with_placement_output_uri_and_secret_reference() -> None:
    pod = _pod()
    (container,) = pod["spec"]["containers"]

    assert container["name"] == "base"
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert container["env"] == [
        {"name": "EPOCHS", "value": "1"},
        {"name": "OUTPUT_URI", "value": "s3://bucket/runs/abc"},
        {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}}},
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "pool-a"}
    assert pod["metadata"]["labels"] == LABELS
    assert "volumes" not in pod["spec"]


def test_multi_gpu_training_pod_mounts_memory_backed_dev_shm() -> None:
    pod = _pod(count=8)

    assert pod["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]


def test_command_and_args_are_left_to_the_image_when_not_given() -> None:
    container = _pod(command=(), args=())["spec"]["containers"][0]

    assert "command" not in container
    assert "args" not in container


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Train_ABC"}, "name"),
        ({"namespace": "gpu.flow"}, "namespace"),
        ({"image": ""}, "image"),
        ({"output_uri": ""}, "output_uri"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"secret_env": {"TOKEN": SecretKeyRef("Bad_Secret", "k")}}, "env.TOKEN.secret"),
    ],
)
def test_invalid_input_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as error:
        _pod(**overrides)

    assert error.value.field == field


def test_a_node_of_several_accelerators_trains_one_process_per_accelerator_under_torchrun() -> None:
    common: dict[str, Any] = {
        "name": "train-abc",
        "namespace": "gpuflow",
        "image": "ghcr.io/example/train:1.0",
        "labels": LABELS,
        "output_uri": "s3://bucket/runs/abc",
        "command": ["python", "-m", "train"],
        "env": {"EPOCHS": "1"},
    }
    (four,) = one_node_training_pod(placement=placement("gcp", "pool-a", "L4", 4, "spot"), **common)["spec"][
        "containers"
    ]
    assert four["command"] == ["python", "-m", "torch.distributed.run", "-m", "train"]
    env = {item["name"]: item["value"] for item in four["env"]}
    assert (env["PET_STANDALONE"], env["PET_NNODES"], env["PET_NPROC_PER_NODE"], env["EPOCHS"]) == ("1", "1", "4", "1")
    (one,) = one_node_training_pod(placement=placement("gcp", "pool-a", "L4", 1, "spot"), **common)["spec"][
        "containers"
    ]
    assert one["command"] == ["python", "-m", "train"]  # one accelerator: the command as it is, no torchrun
    assert not any(item["name"].startswith("PET_") for item in one["env"])
