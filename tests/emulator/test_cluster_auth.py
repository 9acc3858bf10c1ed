"""Each cluster's Kubernetes API lets in only what its cloud's real API server would (README "Authentication")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from conftest import FAILURE_MODES_SCENARIO
from gpuflow_emulator.auth import AKS_SERVER_APP_ID, Authenticator, EntraTokens
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.config import parse
from gpuflow_emulator.testing import EmulatorProcess

EKS, REGION = "gpuflow-use1", "us-east-1"
AKS, AKS_SCOPE, ARM_SCOPE = "gpuflow-eastus", f"{AKS_SERVER_APP_ID}/.default", "https://management.azure.com/.default"
MEMBER, OUTSIDER = "AKIAGPUFLOWEMULATOR", "AKIAOUTSIDER"
LIFETIME_S = 3
AUTH = {
    "token_lifetime_seconds": LIFETIME_S,
    "aws_identities": {
        MEMBER: "arn:aws:iam::123456789012:user/gpuflow",
        OUTSIDER: "arn:aws:iam::123456789012:user/outsider",  # a real identity with no access entry
    },
}


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with EmulatorProcess.start_clouds(tmp_path_factory.mktemp("auth"), FAILURE_MODES_SCENARIO, AUTH) as running:
        yield running


def get_pods(emulator: EmulatorProcess, cluster: str, token: str) -> requests.Response:
    url = f"{emulator.url}/clusters/{cluster}/api/v1/namespaces/default/pods"
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_eks_lets_in_a_fresh_token_of_an_identity_with_an_access_entry(short_lived: EmulatorProcess) -> None:
    assert get_pods(short_lived, EKS, clients.eks_token(EKS, REGION, MEMBER)).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: clients.eks_token(EKS, REGION, OUTSIDER), id="identity-without-access-entry"),
        pytest.param(lambda: clients.eks_token(EKS, REGION, "AKIAUNKNOWN"), id="unknown-access-key"),
        pytest.param(lambda: "any-token", id="not-an-eks-token"),
    ],
)
def test_eks_answers_401_unauthorized_as_kube_apiserver_does(short_lived: EmulatorProcess, token: object) -> None:
    response = get_pods(short_lived, EKS, token())  # type: ignore[operator]
    assert response.status_code == 401
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_an_eks_token_expires_after_the_configured_lifetime(short_lived: EmulatorProcess) -> None:
    token = clients.eks_token(EKS, REGION, MEMBER)
    assert get_pods(short_lived, EKS, token).status_code == 200
    time.sleep(LIFETIME_S + 1.5)  # X-Amz-Date has whole seconds
    assert get_pods(short_lived, EKS, token).status_code == 401
    assert get_pods(short_lived, EKS, clients.eks_token(EKS, REGION, MEMBER)).status_code == 200


def test_gke_and_the_emulators_own_kubeconfigs_stay_open(short_lived: EmulatorProcess) -> None:
    assert get_pods(short_lived, "gpuflow-usc1", "any-token").status_code == 200
    assert get_pods(short_lived, EKS, "gpuflow-emulator").status_code == 200
    assert get_pods(short_lived, AKS, "gpuflow-emulator").status_code == 200


def entra_token(emulator: EmulatorProcess, scope: str) -> str:
    clouds = emulator.clouds()
    return clients.entra_credential(clouds["azure"], clouds["azure_ca"]).get_token(scope).token


def test_entra_aks_lets_in_only_entra_tokens_for_the_aks_server_app(short_lived: EmulatorProcess) -> None:
    assert get_pods(short_lived, AKS, entra_token(short_lived, AKS_SCOPE)).status_code == 200
    assert get_pods(short_lived, AKS, entra_token(short_lived, ARM_SCOPE)).status_code == 401
    assert get_pods(short_lived, AKS, "any-token").status_code == 401


def test_an_entra_token_expires_after_the_configured_lifetime(short_lived: EmulatorProcess) -> None:
    token = entra_token(short_lived, AKS_SCOPE)
    time.sleep(LIFETIME_S + 1)
    assert get_pods(short_lived, AKS, token).status_code == 401


def test_entra_aks_hands_out_a_kubelogin_kubeconfig(short_lived: EmulatorProcess) -> None:
    clouds = short_lived.clouds()
    aks = clients.aks(clouds["azure"], clouds["azure_ca"])
    kubeconfigs = aks.managed_clusters.list_cluster_user_credentials("gpuflow", AKS).kubeconfigs or []
    (user,) = yaml.safe_load(kubeconfigs[0].value or b"")["users"]
    assert user["user"]["exec"]["command"] == "kubelogin"
    assert user["user"]["exec"]["args"][:5] == [
        "get-token",
        "--environment",
        "AzurePublicCloud",
        "--server-id",
        AKS_SERVER_APP_ID,
    ]
    assert "token" not in user["user"]


def test_aks_without_entra_lets_in_any_token(tmp_path: Path) -> None:
    cloud = {"provider": "azure", "region": "eastus", "subscription_id": "s", "resource_group": "g", "entra": False}
    config = parse({"clusters": [{"name": "local-accounts", "cloud": cloud}]}, tmp_path)
    Authenticator(config, EntraTokens(900)).check("local-accounts", "Bearer any-token")
