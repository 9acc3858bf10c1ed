"""The kubeconfig exec plugin for GKE: prints an ``ExecCredential`` with a Google OAuth access token.

What ``gke-gcloud-auth-plugin`` does, without gcloud: the token comes from Application Default Credentials
(the worker's service account, Workload Identity, ``GOOGLE_APPLICATION_CREDENTIALS``) or from the service
account key file named by ``--key-path``, minted afresh each time the Kubernetes client asks. Imports only
google-auth, so it costs a fraction of a second per token.

    python -m gpuflow.clouds.gke_token [--key-path /path/to/key.json]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from gpuflow.clouds.kubeconfig import exec_credential

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
CUSHION = timedelta(minutes=5)  # ask again this long before Google's expiry


def credentials(key_path: str | None = None) -> Any:
    """Refreshed Google credentials from the key file, or from Application Default Credentials."""
    import google.auth
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    if key_path:
        found: Any = service_account.Credentials.from_service_account_file(key_path, scopes=SCOPES)
    else:
        found, _ = google.auth.default(scopes=SCOPES)
    found.refresh(Request())
    return found


def gke_exec_credential(key_path: str | None = None) -> dict[str, Any]:
    found = credentials(key_path)
    expiry = found.expiry.replace(tzinfo=UTC) if found.expiry else datetime.now(UTC) + timedelta(minutes=30)
    return exec_credential(str(found.token), expiry - CUSHION)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a GKE ExecCredential for kubectl and Kubernetes clients.")
    parser.add_argument("--key-path", help="a service account key file; default: Application Default Credentials")
    args = parser.parse_args(argv)
    print(json.dumps(gke_exec_credential(args.key_path)))


if __name__ == "__main__":
    main()
