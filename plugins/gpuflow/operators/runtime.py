"""What every gpuflow operator reads from its environment: the run, the clusters, the failover memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from airflow.sdk import Context

from gpuflow.core.clusters import Cluster, Clusters, load_clusters
from gpuflow.core.settings import clusters_source
from gpuflow.provisioning import Provisioner, Run
from gpuflow.state.store import BlockStore


def run_of(context: Context) -> Run:
    return Run(dag_id=context["dag"].dag_id, run_id=context["run_id"])


def clusters() -> Clusters:
    return load_clusters(clusters_source())


def provisioner(context: Context) -> Provisioner:
    return Provisioner(clusters=clusters(), memory=BlockStore(), run=run_of(context))


def plan_choices(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plan's options in failover order: the chosen one, then the fallbacks."""
    return [plan["chosen"], *plan["fallbacks"]]


def cluster_dict(cluster: Cluster) -> dict[str, Any]:
    """A cluster as plain data, for XCom and trigger kwargs."""
    return {**asdict(cluster), "settings": dict(cluster.settings)}
