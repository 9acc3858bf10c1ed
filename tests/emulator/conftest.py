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
