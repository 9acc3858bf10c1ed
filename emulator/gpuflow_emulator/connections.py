"""The environment that points Airflow (gpuflow's connections) at a running emulator's cloud APIs.

Only endpoints and credentials differ from a real deployment: the backends run unchanged. The AWS
connection's access key is the IAM user the default config (`include/emulator/default.yaml`, `auth`) gives an
access entry on each EKS cluster; nothing is exported as AWS_* variables, so a product that signed its
Kubernetes tokens with the worker's default AWS chain instead of the connection would be refused (401). With
the object stores, the same connection sends S3 to moto (the amazon provider's per-service
``service_config: {s3: {endpoint_url}}``), so the worker reaches S3 only through the connection too. The
Azure connection is a service principal whose authority is the emulator's Entra endpoint (`authority`), so
ARM and the Entra-integrated AKS clusters both get real client-credential tokens, each for its own audience.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gpuflow_emulator.auth import ENTRA_TENANT
from gpuflow_emulator.stores import StoresConfig

ACCESS_KEY_ID = "AKIAGPUFLOWEMULATOR"
AZURE_CLIENT_ID = "gpuflow-emulator-app"


def airflow_environment(clouds: Mapping[str, str], stores: StoresConfig | None = None) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for gpuflow's three connections, from ``GET /_emulator/clouds`` and the object stores."""
    aws_extra: dict[str, Any] = {"endpoint_url": clouds["aws"]}
    if stores is not None:
        aws_extra["service_config"] = {"s3": {"endpoint_url": stores.s3_url}}
    connections = {
        "GPUFLOW_AWS": {"conn_type": "aws", "login": ACCESS_KEY_ID, "password": "emulator", "extra": aws_extra},
        "GPUFLOW_GCP": {
            "conn_type": "google_cloud_platform",
            "extra": {"api_endpoint": clouds["gcp"], "anonymous": True},
        },
        "GPUFLOW_AZURE": {
            "conn_type": "azure",
            "login": AZURE_CLIENT_ID,
            "password": "emulator",
            "extra": {
                "tenantId": ENTRA_TENANT,
                "authority": clouds["azure"],
                "base_url": clouds["azure"],
                "ca_bundle": clouds["azure_ca"],
            },
        },
    }
    return {f"AIRFLOW_CONN_{name}": json.dumps(value) for name, value in connections.items()}
