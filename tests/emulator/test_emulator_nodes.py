"""Placement (selectors, taints, accelerators) and node loss under running pods."""

from __future__ import annotations

from typing import Any

import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod
from kubernetes.client import AppsV1Api, CoreV1Api

pytestmark = pytest.mark.timeout(60)

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _gpu_pod(name: str, *, tolerate: bool = True, **spec: Any) -> dict[str, Any]:
    manifest = python_pod(name, "import time; time.sleep(60)", tolerations=[GPU_TOLERATION] if tolerate else [], **spec)
    manifest["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    return manifest


def _pod(core_v1: CoreV1Api, name: str) -> Any:
    return core_v1.read_namespaced_pod(name, "default")


def _scheduling_message(core_v1: CoreV1Api, name: str) -> str | None:
    conditions = _pod(core_v1, name).status.conditions or []
    return next((c.message for c in conditions if c.type == "PodScheduled" and c.status == "False"), None)


def test_pod_stays_pending_when_no_node_has_free_gpu(core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_pod("default", _gpu_pod("wants-gpu"))

    message = eventually(lambda: _scheduling_message(core_v1, "wants-gpu"), what="the pod to be unschedulable")

    assert message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    assert _pod(core_v1, "wants-gpu").status.phase == "Pending"
    events = core_v1.list_namespaced_event("default", field_selector="involvedObject.name=wants-gpu").items
    assert [(e.type, e.reason, e.message) for e in events] == [("Warning", "FailedScheduling", message)]


def test_gpu_pod_lands_on_the_tainted_gpu_node_it_selects_and_tolerates(
    emulator: EmulatorProcess, core_v1: CoreV1Api
) -> None:
    emulator.add_node("gpu-0", labels={"pool": "gpu"}, taints=[GPU_TAINT], allocatable={"nvidia.com/gpu": "1"})
    core_v1.create_namespaced_pod("default", _gpu_pod("first", nodeSelector={"pool": "gpu"}))
    core_v1.create_namespaced_pod("default", _gpu_pod("second"))
    core_v1.create_namespaced_pod("default", _gpu_pod("intolerant", tolerate=False))

    eventually(lambda: _pod(core_v1, "first").status.phase == "Running", what="the first GPU pod to run")

    assert _pod(core_v1, "first").spec.node_name == "gpu-0"
    assert eventually(lambda: _scheduling_message(core_v1, "second")) == (
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    assert eventually(lambda: _scheduling_message(core_v1, "intolerant")) == (
        "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )


def test_removing_a_node_fails_its_running_pod(emulator: EmulatorProcess, core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_pod("default", python_pod("victim", "import time; time.sleep(60)"))
    eventually(lambda: _pod(core_v1, "victim").status.phase == "Running", what="the pod to run")
    node = _pod(core_v1, "victim").spec.node_name

    emulator.remove_node(node, reason="NodeLost")

    pod = _pod(core_v1, "victim")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "NodeLost")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "ContainerStatusUnknown")
    assert node not in [n.metadata.name for n in core_v1.list_node().items]


def test_deployment_pod_on_a_lost_node_is_recreated_elsewhere_or_left_pending(
    emulator: EmulatorProcess, core_v1: CoreV1Api, apps_v1: AppsV1Api
) -> None:
    emulator.add_node("gpu-a", labels={"pool": "gpu"})
    template = python_pod("serve", "import time; time.sleep(60)", restart_policy="Always", nodeSelector={"pool": "gpu"})
    apps_v1.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "serve"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "serve"}}, "template": template},
        },
    )
    first = eventually(lambda: _running_on(core_v1, "gpu-a"), what="the replica to run on gpu-a")

    emulator.remove_node("gpu-a")

    def replacement_message() -> str | None:
        pods = [p for p in core_v1.list_namespaced_pod("default").items if p.metadata.name != first]
        return _scheduling_message(core_v1, pods[0].metadata.name) if pods else None

    assert eventually(replacement_message, what="a pending replacement") == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )
    emulator.add_node("gpu-b", labels={"pool": "gpu"})
    assert eventually(lambda: _running_on(core_v1, "gpu-b"), what="the replacement to run on gpu-b") != first


def _running_on(core_v1: CoreV1Api, node: str) -> str | None:
    running = [
        p.metadata.name
        for p in core_v1.list_namespaced_pod("default").items
        if p.spec.node_name == node and p.status.phase == "Running"
    ]
    return running[0] if running else None
