"""What every gpuflow operator reads from its environment: the run, the clusters, the failover memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Context

from gpuflow.core.clusters import Cluster, Clusters, load_clusters
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.core.naming import run_key
from gpuflow.core.settings import airflow_home, artifacts_base, clusters_source
from gpuflow.kube.placement import Placement, placement
from gpuflow.provisioning import Provisioner, Run
from gpuflow.state.store import BlockStore

# The namespace every run's pods, endpoint objects and secrets live in; the teardown sweeps it.
JOB_NAMESPACE = "default"


def run_of(context: Context) -> Run:
    return Run(dag_id=context["dag"].dag_id, run_id=context["run_id"])


def clusters() -> Clusters:
    return load_clusters(clusters_source())


def provisioner(context: Context) -> Provisioner:
    return Provisioner(clusters=clusters(), memory=BlockStore(), run=run_of(context))


def kube_config(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """A kubeconfig for a cluster given as plain data (XCom), from its cloud's API."""
    from gpuflow.clouds.base import backend_for

    return backend_for(Cluster(**cluster)).kube_config()


def kube_config_file(cluster: Mapping[str, Any]) -> str:
    """The cluster's kubeconfig written where this worker's KubernetesPodOperator can read it (mode 0600).

    Rewritten on every call: a deferred task resumes on any worker, and credentials rotate.
    """
    import yaml

    directory = airflow_home() / "gpuflow" / "kubeconfigs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{cluster['cloud']}-{cluster['region']}-{cluster['name']}.yaml"
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(kube_config(cluster)))
    return str(path)


def artifacts_uri(run: Run) -> str:
    """Where a run's outputs go when the request names none: a folder of the run under ``artifacts_base()``."""
    return f"{artifacts_base().rstrip('/')}/{run.dag_id}/{run_key(run.dag_id, run.run_id)}"


def placement_on(pool: PoolHandoff) -> Placement:
    """Where a pod must go to land on the ready pool (the ``wait_node_pool`` XCom)."""
    choice = pool.choice
    return placement(
        pool.cluster.cloud,
        pool.pool.name,
        choice["accelerator"],
        int(choice["accelerator_count"]),
        choice["capacity_type"],
    )
