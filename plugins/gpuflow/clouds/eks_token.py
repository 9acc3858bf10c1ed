"""The kubeconfig exec plugin for EKS: prints an ``ExecCredential`` whose token is a presigned STS URL.

Kubernetes clients run it whenever they need a token, so it imports only boto3 (the provider's
``eks_get_token`` helper imports all of Airflow, seconds per call, and prints text that is not the JSON the
exec protocol expects). The token format is EKS's: ``k8s-aws-v1.`` + the unpadded URL-safe base64 of a
GetCallerIdentity URL signed for the cluster (header ``x-k8s-aws-id``), valid 15 minutes. It signs with the
AWS credentials in its environment, which boto3 reads before anything else: the Airflow connection's, put in
the exec ``env`` by ``EksBackend.kube_config``; without them, the default chain of the process running it.

    python -m gpuflow.clouds.eks_token --cluster-name NAME --region-name REGION
"""

from __future__ import annotations

import argparse
import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
from botocore.model import ServiceId
from botocore.signers import RequestSigner

from gpuflow.clouds.kubeconfig import exec_credential

PRESIGNED_URL_EXPIRES_S = 60
TOKEN_LIFETIME = timedelta(minutes=14)  # EKS accepts a token for 15 minutes; a minute of cushion


def sts_url(region: str) -> str:
    return f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"


def token(cluster_name: str, region: str, session: boto3.Session | None = None) -> str:
    """A bearer token for the cluster, signed with boto3's credential chain (environment first) or ``session``."""
    session = session or boto3.Session(region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        raise SystemExit("no AWS credentials: set the worker's role, AWS_PROFILE or AWS_ACCESS_KEY_ID")
    signer = RequestSigner(ServiceId("STS"), region, "sts", "v4", credentials, session.events)
    request = {"method": "GET", "url": sts_url(region), "body": {}, "headers": {"x-k8s-aws-id": cluster_name}}
    url = signer.generate_presigned_url(
        {**request, "context": {}}, region_name=region, expires_in=PRESIGNED_URL_EXPIRES_S, operation_name=""
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def eks_exec_credential(cluster_name: str, region: str, now: datetime | None = None) -> dict[str, object]:
    return exec_credential(token(cluster_name, region), (now or datetime.now(UTC)) + TOKEN_LIFETIME)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print an EKS ExecCredential for kubectl and Kubernetes clients.")
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--region-name", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(eks_exec_credential(args.cluster_name, args.region_name)))


if __name__ == "__main__":
    main()
