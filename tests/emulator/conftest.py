"""Fixtures: an emulator subprocess per test (cluster `test`, nodes cpu-0 and cpu-1) and clients for it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from gpuflow_emulator.testing import EmulatorProcess

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
