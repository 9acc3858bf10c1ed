"""The official SDK clients pointed at a running emulator: only endpoint and credentials differ from real use.

These are what tests use and what a backend's connection extras must reproduce:
    EKS   boto3.client("eks", region_name=R, endpoint_url=<aws url>, aws_access_key_id/secret: any)
    GKE   ClusterManagerClient(transport="rest", client_options={"api_endpoint": <gcp url>},
                               credentials=AnonymousCredentials())
    AKS   ContainerServiceClient(<any TokenCredential>, SUBSCRIPTION, base_url=<azure url>,
                                 connection_verify=<azure_ca PEM path>)
URLs and the CA path come from `GET /_emulator/clouds` (or `EmulatorProcess.clouds()`).
`eks_token` makes the bearer token an EKS cluster's Kubernetes API takes, as aws-iam-authenticator's
generator does (written here again, not imported from gpuflow: the emulator shares no code with it).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import boto3
from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from botocore.config import Config
from botocore.model import ServiceId
from botocore.signers import RequestSigner
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.container_v1 import ClusterManagerClient

from gpuflow_emulator.auth import ENTRA_TENANT

AZURE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def eks(url: str, region: str, max_attempts: int | None = None) -> Any:
    """A boto3 EKS client; `max_attempts=1` turns botocore's retries off to see the first error."""
    config = Config(retries={"total_max_attempts": max_attempts}) if max_attempts else None
    return boto3.client(
        "eks",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
        config=config,
    )


def eks_token(cluster: str, region: str, access_key: str, secret_key: str = "emulator") -> str:
    """`k8s-aws-v1.` + the unpadded URL-safe base64 of a GetCallerIdentity URL presigned for `cluster`."""
    session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region)
    signer = RequestSigner(ServiceId("STS"), region, "sts", "v4", session.get_credentials(), session.events)
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster},
            "context": {},
        },
        region_name=region,
        expires_in=60,
        operation_name="",
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def gke(url: str) -> ClusterManagerClient:
    return ClusterManagerClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=url),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )


class StaticToken:
    """A TokenCredential that always returns the same bearer token (the emulator accepts any)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator-token", int(time.time()) + 3600)


def entra_credential(url: str, ca_path: str, client_id: str = "gpuflow-emulator-app") -> ClientSecretCredential:
    """A service principal's credential whose authority is the emulator's Entra endpoint (on the Azure listener)."""
    return ClientSecretCredential(
        ENTRA_TENANT,
        client_id,
        "emulator",
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca_path,
    )


def aks(url: str, ca_path: str, retry_total: int | None = None) -> ContainerServiceClient:
    """An AKS client trusting only the emulator's CA; `retry_total=0` turns azure-core's retries off."""
    extra: dict[str, Any] = {} if retry_total is None else {"retry_total": retry_total}
    return ContainerServiceClient(StaticToken(), AZURE_SUBSCRIPTION, base_url=url, connection_verify=ca_path, **extra)
