"""Fixtures: an emulator subprocess per test (cluster `test`, nodes cpu-0 and cpu-1) and clients for it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod

# KubernetesPodOperator reads the Airflow config but needs no metadata DB; keep it out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="gpuflow-emulator-airflow-"))

CPU_NODES = [{"name": "cpu-0"}, {"name": "cpu-1"}]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with EmulatorProcess.start(tmp_path / "emulator", nodes=CPU_NODES) as running:
        yield running


@pytest.fixture
def api_client(emulator: EmulatorProcess) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig()))
    yield client
    client.close()


@pytest.fixture
def core_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def apps_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)


# Pool-name prefixes pick the failure mode, so one emulator per test module serves every case.
FAILURE_MODES_SCENARIO = {
    "seed": 7,
    "time_scale": 100,
    "defaults": {"provisioning_seconds": 20, "deleting_seconds": 10},
    "rules": [
        {"match": {"pool": "syncstock*"}, "capacity": {"nodes": 0, "when": "sync"}},
        {"match": {"pool": "asyncstock*"}, "capacity": {"nodes": 0, "when": "async"}},
        {"match": {"pool": "degraded*"}, "capacity": {"nodes": 0, "when": "async", "status": "DEGRADED"}},
        {"match": {"pool": "launching*"}, "capacity": {"nodes": 0, "when": "async", "status": "CREATING"}},
        {"match": {"pool": "nojoin*"}, "capacity": {"nodes": 0, "when": "async", "code": "NodeCreationFailure"}},
        {"match": {"pool": "syncquota*"}, "quota": {"accelerators": 0, "when": "sync", "metric": "GPUS_ALL_REGIONS"}},
        {"match": {"pool": "syncregquota*"}, "quota": {"accelerators": 0, "when": "sync"}},
        {"match": {"pool": "templatequota*"}, "quota": {"accelerators": 0, "code": "InvalidTemplateDeployment"}},
        {"match": {"pool": "vcpuquota*"}, "quota": {"accelerators": 0, "code": "ErrCode_InsufficientVCPUQuota"}},
        {"match": {"pool": "sizenotallowed*"}, "quota": {"accelerators": 0, "code": "BadRequest"}},
        {"match": {"pool": "asyncquota*"}, "quota": {"accelerators": 0, "when": "async", "metric": "GPUS_ALL_REGIONS"}},
        {"match": {"pool": "neverready*"}, "never_ready": True},
        {"match": {"pool": "spot*"}, "preempt_after_seconds": 150},
    ],
}


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator per module with all three cloud APIs under FAILURE_MODES_SCENARIO."""
    with EmulatorProcess.start_clouds(tmp_path_factory.mktemp("clouds"), FAILURE_MODES_SCENARIO) as running:
        yield running


def kube(emulator: EmulatorProcess, cluster: str) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig(cluster)))
    )


# Spot interruptions at a pace a test can watch: EKS's 120 s notice is 6 s, GKE's 30 s shutdown 1.5 s (0.75 s for
# ordinary pods), AKS's 30 s Preempt notice 1.5 s. A recreated GKE VM comes back 3 s after it went (provisioning).
SPOT_SCENARIO = {
    "seed": 11,
    "time_scale": 20,
    "defaults": {"provisioning_seconds": 20, "deleting_seconds": 10},
    "rules": [{"match": {"cloud": "gcp"}, "provisioning_seconds": 60}],
}


@pytest.fixture(scope="module")
def spot_clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator per module with all three cloud APIs under SPOT_SCENARIO; tests preempt pools when they choose."""
    with EmulatorProcess.start_clouds(tmp_path_factory.mktemp("spot"), SPOT_SCENARIO) as running:
        yield running


def sigterm_pod(name: str, node: str, marker: Path, linger: float = 0.0) -> dict[str, Any]:
    """A pod pinned to `node` that writes `marker`.ready once it listens for SIGTERM, and "SIGTERM" to `marker` when
    one comes, then exits 0 after `linger` seconds (still Terminating meanwhile)."""
    code = (
        "import pathlib, signal, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "def stop(signum, frame):\n"
        "    marker.write_text('SIGTERM')\n"
        f"    time.sleep({linger})\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "pathlib.Path(str(marker) + '.ready').write_text('ready')\n"
        "while True:\n"
        "    time.sleep(0.05)\n"
    )
    return python_pod(name, code, nodeName=node)


def running_with_handler(core: kubernetes.client.CoreV1Api, name: str, marker: Path) -> None:
    """Wait until the sigterm_pod `name` runs and listens for SIGTERM."""
    eventually(lambda: core.read_namespaced_pod(name, "default").status.phase == "Running", what=f"pod {name} running")
    eventually(Path(str(marker) + ".ready").exists, what=f"pod {name} to listen for SIGTERM")


def node_events(core: kubernetes.client.CoreV1Api, node: str) -> list[tuple[str, str]]:
    """(reason, message) of the events recorded on Node `node`."""
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={node}").items
    return [(e.reason, e.message) for e in events if e.involved_object.kind == "Node"]


def pod_gone(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, "default")
    except kubernetes.client.ApiException as exc:
        return bool(exc.status == 404)
    return False


def nodes_labelled(core: kubernetes.client.CoreV1Api, label: str, value: str) -> list[str]:
    return [n.metadata.name for n in core.list_node(label_selector=f"{label}={value}").items]


def node_ready(core: kubernetes.client.CoreV1Api, node: str) -> str | None:
    """The status of the node's Ready condition (None while there is no such Node)."""
    try:
        conditions = core.read_node(node).status.conditions
    except kubernetes.client.ApiException:
        return None
    return str(next(c.status for c in conditions if c.type == "Ready"))
