"""The kubeconfig a backend builds reaches its cluster's Kubernetes API with the Airflow connection's credentials,
not the worker's environment (the emulator lets in only identities with access, as the clouds do)."""

from __future__ import annotations

import pytest
from gpuflow_emulator.testing import EmulatorProcess
from kubernetes import client as k8s

from gpuflow.clouds.base import backend_for
from gpuflow.kube.cluster import api_client
from tests.support.offers import cluster_of


@pytest.fixture
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker with no AWS identity of its own: no keys, profile, config files or instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_ambient_aws")
def test_eks_kubeconfig_signs_with_the_connections_keys(clouds_emulator: EmulatorProcess) -> None:
    config = backend_for(cluster_of("aws")).kube_config()
    assert k8s.CoreV1Api(api_client(config)).list_namespaced_pod("default").items == []


@pytest.mark.usefixtures("no_ambient_aws")
def test_eks_kubeconfig_ignores_other_keys_in_the_workers_environment(
    clouds_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = backend_for(cluster_of("aws")).kube_config()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWORKERDEFAULT")  # who the worker is: no access entry
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker")
    assert k8s.CoreV1Api(api_client(config)).list_namespaced_pod("default").items == []


def test_entra_aks_kubeconfig_gets_tokens_from_the_connections_service_principal(
    clouds_emulator: EmulatorProcess,
) -> None:
    config = backend_for(cluster_of("azure")).kube_config()
    assert k8s.CoreV1Api(api_client(config)).list_namespaced_pod("default").items == []
