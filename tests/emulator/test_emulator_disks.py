"""A node's boot disk holds the pod's images: too small a disk fails the pull the way containerd reports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gpuflow_emulator.disk import pull_failure, quantity_bytes
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod
from kubernetes import client, config

GIB = 2**30


def _image_bytes(image: str) -> int:
    return {"vllm/vllm-openai:v1": 25 * 10**9, "rclone/rclone:1": 10**8}.get(image, 0)


def _node(capacity: str | None) -> dict[str, object]:
    return {"status": {"capacity": {"ephemeral-storage": capacity} if capacity else {}}}


def _pod(*images: str) -> dict[str, object]:
    init, *main = images
    return {
        "spec": {
            "initContainers": [{"name": "init", "image": init}],
            "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(main)],
        }
    }


@pytest.mark.parametrize(
    ("text", "expected"), [("20Gi", 20 * GIB), ("100G", 100 * 10**9), ("1024", 1024), ("1.5Ki", 1536)]
)
def test_quantity_bytes(text: str, expected: int) -> None:
    assert quantity_bytes(text) == expected


def test_the_image_that_overflows_the_disk_fails_with_no_space_left() -> None:
    failure = pull_failure(_pod("rclone/rclone:1", "vllm/vllm-openai:v1"), _node("20Gi"), _image_bytes)
    assert failure is not None
    image, message = failure
    assert image == "vllm/vllm-openai:v1"
    assert "no space left on device" in message
    assert "20.0 GiB" in message


def test_images_that_fit_and_nodes_without_a_disk_pull() -> None:
    pod = _pod("rclone/rclone:1", "vllm/vllm-openai:v1", "vllm/vllm-openai:v1")  # one image is pulled once
    assert pull_failure(pod, _node("30Gi"), _image_bytes) is None
    assert pull_failure(pod, _node(None), _image_bytes) is None


def test_a_pod_whose_image_overflows_its_node_stays_in_err_image_pull(tmp_path: Path) -> None:
    node = {"name": "small-disk", "allocatable": {"ephemeral-storage": "20Gi"}}
    images = [{"image_prefix": "python:", "size": "25G", "source": "test"}]
    with EmulatorProcess.start(tmp_path, nodes=[node], extra={"images": images}) as emulator:
        core = client.CoreV1Api(config.new_client_from_config(str(emulator.kubeconfig())))
        core.create_namespaced_pod("default", python_pod("big", "print('never runs')"))

        def waiting() -> Any:
            statuses = core.read_namespaced_pod("big", "default").status.container_statuses or []
            return next(
                (
                    s.state.waiting
                    for s in statuses
                    if s.state.waiting and s.state.waiting.reason != "ContainerCreating"
                ),
                None,
            )

        state = eventually(waiting, what="the container to wait")
        assert state.reason == "ErrImagePull"
        assert "no space left on device" in state.message
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=big").items
        assert any(e.reason == "Failed" and "no space left on device" in e.message for e in events)
