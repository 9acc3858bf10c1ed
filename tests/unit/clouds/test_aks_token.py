"""The AKS backend swaps kubelogin (interactive, not on workers) for gpuflow's Entra token helper."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from gpuflow.clouds import aks_token
from gpuflow.clouds.azure import AksBackend
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind

KUBELOGIN = {
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "command": "kubelogin",
    "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", "server-app", "--login", "devicecode"],
}
CLUSTER = Cluster(
    "azure", "eastus", "gpuflow-eastus", "gpuflow_azure", {"resource_group": "rg", "subscription_id": "s"}
)


def backend_with(monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any]) -> AksBackend:
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_AZURE", json.dumps({"conn_type": "azure", **connection}))
    kubeconfig = {
        "clusters": [{"name": "c", "cluster": {"server": "https://aks.example"}}],
        "users": [{"name": "clusterUser_rg_gpuflow-eastus", "user": {"exec": KUBELOGIN}}],
    }
    credentials = SimpleNamespace(kubeconfigs=[SimpleNamespace(value=yaml.safe_dump(kubeconfig).encode())])
    backend = AksBackend(CLUSTER)
    managed = SimpleNamespace(list_cluster_user_credentials=lambda *_: credentials)
    backend.__dict__["client"] = SimpleNamespace(managed_clusters=managed)
    return backend


def test_kubelogin_is_replaced_by_the_token_helper_with_the_service_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"login": "app", "password": "secret", "extra": {"tenantId": "t", "authority": "https://e"}}
    (user,) = backend_with(monkeypatch, connection).kube_config()["users"]
    command = user["user"]["exec"]
    assert command["args"] == ["-m", aks_token.__name__, "--server-id", "server-app", "--authority", "https://e"]
    env = {entry["name"]: entry["value"] for entry in command["env"]}
    assert (env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]) == ("t", "app", "secret")


def test_without_a_service_principal_the_helper_uses_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (user,) = backend_with(monkeypatch, {"extra": {}}).kube_config()["users"]
    assert {entry["name"] for entry in user["user"]["exec"]["env"]} == {"PYTHONPATH"}


def test_a_static_token_connection_is_refused_with_the_field_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CloudError) as refused:
        backend_with(monkeypatch, {"extra": {"static_token": "abc"}}).kube_config()
    assert refused.value.kind is ErrorKind.AUTH
    assert "static_token" in refused.value.message
    assert "service principal" in refused.value.message
