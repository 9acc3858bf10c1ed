"""The kubeconfig exec plugin for Entra-integrated AKS: prints an ``ExecCredential`` with a Microsoft Entra token.

What ``kubelogin get-token`` does for the AKS kubeconfig, without kubelogin (workers do not have it) and
without its interactive device-code login: the token is for the AKS server application (scope
``SERVER_ID/.default``), minted afresh each time the Kubernetes client asks, as the Airflow Azure connection's
service principal (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` in the exec ``env``:
the plugin is a subprocess and cannot read Airflow connections) or, without them, ``DefaultAzureCredential``
(managed identity, workload identity). Imports only azure-identity.

    python -m gpuflow.clouds.aks_token --server-id 6dae42f8-4368-4678-94ff-3960e28e3630 [--authority URL]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from gpuflow.clouds.kubeconfig import exec_credential

# The Entra application of every AKS cluster's API server ("The AAD server app ID of AKS Managed AAD is always
# 6dae42f8-4368-4678-94ff-3960e28e3630 in any environments", Azure/kubelogin README, exec plugin format).
AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
SERVICE_PRINCIPAL_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
CUSHION = timedelta(minutes=5)  # ask again this long before Entra's expiry


def service_principal(
    tenant: str, client_id: str, secret: str, authority: str | None = None, ca_bundle: str | None = None
) -> Any:
    """A ``ClientSecretCredential``; ``authority`` is another Entra host (sovereign clouds, the emulator), which
    then is not looked up in Entra's list of known hosts, and ``ca_bundle`` a CA to trust for it."""
    from azure.identity import ClientSecretCredential

    options: dict[str, Any] = {"authority": authority, "disable_instance_discovery": True} if authority else {}
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    return ClientSecretCredential(tenant, client_id, secret, **options)


def credential(authority: str | None = None, ca_bundle: str | None = None) -> Any:
    """The service principal in the environment, else ``DefaultAzureCredential``."""
    tenant, client_id, secret = (os.environ.get(name, "") for name in SERVICE_PRINCIPAL_VARIABLES)
    if tenant and client_id and secret:
        return service_principal(tenant, client_id, secret, authority, ca_bundle)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def aks_exec_credential(
    server_id: str = AKS_SERVER_ID, authority: str | None = None, ca_bundle: str | None = None
) -> dict[str, Any]:
    token = credential(authority, ca_bundle).get_token(f"{server_id}/.default")
    return exec_credential(token.token, datetime.fromtimestamp(token.expires_on, UTC) - CUSHION)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print an AKS (Entra) ExecCredential for Kubernetes clients.")
    parser.add_argument("--server-id", default=AKS_SERVER_ID, help="the cluster's Entra server application")
    parser.add_argument("--authority", help="the Entra host, when not Azure's public one")
    parser.add_argument("--ca-bundle", help="a CA bundle to trust for the authority")
    args = parser.parse_args(argv)
    print(json.dumps(aks_exec_credential(args.server_id, args.authority, args.ca_bundle)))


if __name__ == "__main__":
    main()
