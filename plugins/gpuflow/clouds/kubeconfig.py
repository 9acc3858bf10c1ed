"""Kubeconfigs for the clusters of our clouds, and the exec-plugin protocol their token helpers speak.

A kubeconfig whose user runs an exec plugin gets a fresh short-lived token whenever the Kubernetes client
needs one (and cncf-kubernetes reloads such a config on every call, the triggerer's included), so a job
that runs for hours never meets an expired token. No secret goes into a trigger or XCom; where the token
must come from an Airflow connection's own credentials, they travel in the exec section's ``env`` of a config
that is only held in memory or written mode 0600 (``clouds.access.kube_config_file``).
Kept free of cloud SDK and Airflow imports: the token helpers import it, and they run once per token.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
_PLUGINS = str(Path(__file__).resolve().parents[2])  # the folder that holds the gpuflow package


def exec_user(module: str, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A kubeconfig user that runs ``python -m module args`` (this interpreter) for each token, with ``env``
    added to its environment: how the credentials of an Airflow connection reach the plugin, which cannot read
    connections itself (in Airflow 3 only the task supervisor can)."""
    # The exec plugin is a new process: make gpuflow importable there as it is here.
    variables = {"PYTHONPATH": _PLUGINS, **(env or {})}
    return {
        "exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": sys.executable,
            "args": ["-m", module, *args],
            "env": [{"name": name, "value": value} for name, value in variables.items()],
            "interactiveMode": "Never",
        }
    }


def exec_credential(token: str, expires: datetime) -> dict[str, Any]:
    """What an exec plugin prints: the token, and when the client must ask again."""
    return {
        "kind": "ExecCredential",
        "apiVersion": EXEC_API_VERSION,
        "spec": {},
        "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token},
    }


def kube_config(name: str, server: str, ca_data: str | None, user: dict[str, Any]) -> dict[str, Any]:
    """A one-cluster, one-user kubeconfig with ``name`` as its current context."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": "gpuflow", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "gpuflow"}}],
        "current-context": name,
    }
