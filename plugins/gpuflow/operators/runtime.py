"""What every gpuflow operator reads from its environment: the run, the clusters, the failover memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Context

from gpuflow.core.clusters import Cluster, Clusters, load_clusters
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.core.naming import run_key
from gpuflow.core.settings import artifacts_base, clusters_source
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


def artifacts_uri(run: Run, cluster: Cluster) -> str:
    """Where a run's outputs go when the request names none: a folder of the run under ``GPUFLOW_ARTIFACTS_URI``,
    else in the bucket of the cluster it runs on (in that cluster's cloud and region)."""
    base = artifacts_base() or cluster.artifacts
    return f"{base.rstrip('/')}/{run.dag_id}/{run_key(run.dag_id, run.run_id)}"


def endpoint_adapters_uri(endpoint: str, cluster: Cluster) -> str:
    """The named endpoint's LoRA adapters folder, which its pods mirror: beside the runs' outputs, on the bucket of
    the cluster it serves on (the one its pods can read)."""
    base = artifacts_base() or cluster.artifacts
    return f"{base.rstrip('/')}/endpoints/{endpoint}/adapters"


def output_uri(job: Mapping[str, Any], run: Run, cluster: Cluster) -> str:
    """The job's ``output_uri``, else ``artifacts_uri``: the one place training writes and serving reads."""
    return str(job["output_uri"]) or artifacts_uri(run, cluster)


def provisioned_pool(context: Context, provisioned_task_id: str) -> PoolHandoff:
    """The pool the run was first provisioned on (``provisioned_task_id``'s XCom): its cluster's bucket holds the
    run's outputs, wherever a recovery moved the run since."""
    return PoolHandoff.from_xcom(context["ti"].xcom_pull(task_ids=provisioned_task_id))


def run_output_uri(context: Context, job: Mapping[str, Any], provisioned_task_id: str) -> str:
    """``output_uri`` for the pool the run was first provisioned on, not the one it holds now: after a recovery on
    another cluster, training resumes from, and the endpoint serves, the same place."""
    return output_uri(job, run_of(context), provisioned_pool(context, provisioned_task_id).cluster)


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
