"""Kubeconfigs for a cluster, from its cloud's API.

Here, not in the operators, because operators and triggers both need them, and triggers must not import
operators.
"""

from __future__ import annotations

from typing import Any

import yaml

from gpuflow.clouds.base import backend_for
from gpuflow.core.clusters import Cluster
from gpuflow.core.settings import airflow_home


def kube_config(cluster: Cluster) -> dict[str, Any]:
    """A kubeconfig for the cluster, from its cloud's API."""
    return backend_for(cluster).kube_config()


def kube_config_file(cluster: Cluster) -> str:
    """The cluster's kubeconfig written where this worker's KubernetesPodOperator can read it (mode 0600).

    Rewritten on every call: a deferred task resumes on any worker, and credentials rotate.
    """
    directory = airflow_home() / "gpuflow" / "kubeconfigs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{cluster.cloud}-{cluster.region}-{cluster.name}.yaml"
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(kube_config(cluster)))
    return str(path)
