"""The environment that points Airflow (gpuflow's connections) at a running emulator's cloud APIs.

Only endpoints and credentials differ from a real deployment: the backends run unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def airflow_environment(clouds: Mapping[str, str]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for gpuflow's three connections, from ``GET /_emulator/clouds``."""
    connections = {
        "GPUFLOW_AWS": {
            "conn_type": "aws",
            "login": "emulator",
            "password": "emulator",
            "extra": {"endpoint_url": clouds["aws"]},
        },
        "GPUFLOW_GCP": {
            "conn_type": "google_cloud_platform",
            "extra": {"api_endpoint": clouds["gcp"], "anonymous": True},
        },
        "GPUFLOW_AZURE": {
            "conn_type": "azure",
            "extra": {"base_url": clouds["azure"], "ca_bundle": clouds["azure_ca"], "static_token": "emulator"},
        },
    }
    environment = {f"AIRFLOW_CONN_{name}": json.dumps(value) for name, value in connections.items()}
    # The EKS token helper signs with the default AWS credential chain of the process using the kubeconfig.
    environment |= {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator"}
    return environment
