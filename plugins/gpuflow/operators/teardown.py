"""Delete everything a run created, on every cluster it could have touched, and prove it is gone.

Kubernetes objects (the endpoint's Deployment, Service and Secret, a training pod) go first, while their
nodes still exist; then the node pools.

It does not trust XCom for what exists: failover may have created several pools, and a task may have
died before recording one. It lists by the run's label on every cluster of the plan's options instead.
A cluster it cannot reach (an API down, expired credentials) does not spare the others: every step runs on
every cluster, and the task then fails naming what it could not do.

Keep-time: when the request asked to keep the endpoint N minutes (``keep_endpoint_minutes``) and the endpoint
did serve, its Deployment (with its pods), Service and Secret and the pool serving them stay, each labelled
``gpuflow.io/expires-at``; everything else of the run (the training pod, pools failover abandoned, objects on
other clusters) is deleted as usual. The ``gpu_janitor`` DAG deletes the kept ones once that time has passed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster, ClusterConfigError
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, PoolState
from gpuflow.core.settings import poll_interval_s as poll_interval_s_setting
from gpuflow.kube.cluster import ENDPOINT_KINDS, api_client, delete_objects, label_objects, labelled_objects
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters, plan_choices, run_of

DEFAULT_DELETE_TIMEOUT_S = 15 * 60


@dataclass(frozen=True, slots=True)
class Keep:
    """The serving pool (and the endpoint on its cluster) to keep, and until when."""

    pool: NodePoolRef
    until: datetime

    def to_dict(self, objects: list[str]) -> dict[str, Any]:
        """For XCom: the cost report reads how long the kept pool goes on costing."""
        epoch = int(self.until.timestamp())
        return {
            "pool": self.pool.to_dict(),
            "objects": objects,
            "expires_at": self.until.isoformat(),
            "expires_at_epoch": epoch,
        }


class TeardownOperator(BaseOperator):
    """Delete every Kubernetes object and node pool labelled with this run (keeping a served endpoint and its
    pool when the request asked to); fail if anything it deleted is left after the timeout.

    :param plan_task_id: the task whose XCom holds the plan (the clusters to sweep come from its options)
        and the job (``keep_endpoint_minutes``).
    :param pool_task_id: the task whose XCom holds the pool the run ended on (the one to keep).
    :param endpoint_task_id: the task whose XCom says the endpoint served (an endpoint that never did is
        not kept).
    :param delete_timeout_s: how long deletions may take before the run is failed with what is left.
    :param poll_interval_s: seconds between checks while deletions finish (default ``GPUFLOW_POLL_INTERVAL_S``).
    """

    template_fields = ("plan_task_id", "pool_task_id", "endpoint_task_id")
    ui_color = "#f6dede"

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        pool_task_id: str = "wait_node_pool",
        endpoint_task_id: str = "wait_endpoint",
        delete_timeout_s: float = DEFAULT_DELETE_TIMEOUT_S,
        poll_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.pool_task_id = pool_task_id
        self.endpoint_task_id = endpoint_task_id
        self.delete_timeout_s = delete_timeout_s
        self.poll_interval_s = poll_interval_s

    def execute(self, context: Context) -> dict[str, Any]:
        run = run_of(context)
        label = {naming.RUN_LABEL: naming.run_key(run.dag_id, run.run_id)}
        keep = self._keep(context)
        backends = [backend_for(c) for c in self._clusters(context)]
        # One cluster's failure (expired credentials, an API down) must not spare another cluster's GPUs:
        # every step runs on every cluster, and what failed is raised at the end, with what is left.
        failures: dict[str, str] = {}
        deleted_objects: list[str] = []
        kept_objects: list[str] = []
        for backend in backends:
            try:
                deleted_here, kept_here = self._sweep_objects(backend, label, keep)
            except Exception as exc:  # any cloud or Kubernetes failure: note it, carry on with the other clusters
                _note(failures, f"deleting objects on {_where(backend)}", exc, self.log)
                continue
            deleted_objects += deleted_here
            kept_objects += kept_here
        deleted_pools: list[dict[str, Any]] = []
        listed: list[CloudBackend] = []
        for backend in backends:
            try:
                deleted_pools += self._delete_pools(backend, label, keep)
            except Exception as exc:  # as above: the other clusters' pools are still deleted
                _note(failures, f"deleting node pools on {_where(backend)}", exc, self.log)
                continue
            listed.append(backend)
        left = self._wait_until_gone(listed, label, keep, failures)
        if left or failures:
            problems = [f"{what}: {error}" for what, error in failures.items()]
            if left:
                names = ", ".join(f"{s.ref.cloud}/{s.ref.cluster}/{s.ref.name} ({s.state.value})" for s in left)
                problems.append(f"{len(left)} node pool(s) left after {self.delete_timeout_s:.0f}s: {names}")
            raise AirflowException(
                f"teardown incomplete ({len(deleted_pools)} node pool(s) deleted; the janitor retries what is "
                f"labelled with the run): " + "; ".join(problems)
            )
        self.log.info("teardown complete: %d node pool(s) deleted, none left", len(deleted_pools))
        kept = None
        if keep is not None:
            kept = keep.to_dict(kept_objects)
            self.log.info(
                "kept until %s: node pool %s on %s and %s; the gpu_janitor DAG deletes them after that",
                keep.until.strftime("%Y-%m-%d %H:%M:%S UTC"),
                keep.pool.name,
                keep.pool.cluster,
                ", ".join(kept_objects) or "no endpoint object",
            )
        return {"deleted_pools": deleted_pools, "deleted_objects": deleted_objects, "kept": kept}

    def _delete_pools(self, backend: CloudBackend, label: dict[str, str], keep: Keep | None) -> list[dict[str, Any]]:
        """Request the deletion of the run's pools on this cluster (the kept one is stamped instead)."""
        deleted = []
        for status in backend.list_node_pools(label):
            if keep is not None and status.ref == keep.pool:
                backend.label_node_pool(status.ref, naming.expiry_label(keep.until))
                continue
            self.log.info("deleting node pool %s on %s", status.ref.name, backend.cluster.name)
            backend.delete_node_pool(status.ref)
            deleted.append(status.ref.to_dict())
        return deleted

    def _keep(self, context: Context) -> Keep | None:
        """What to keep: the serving pool, when the request asked for keep-time and the endpoint served."""
        ti = context["ti"]
        job = (ti.xcom_pull(task_ids=self.plan_task_id) or {}).get("job") or {}
        minutes = int(job.get("keep_endpoint_minutes") or 0)
        if not minutes:
            return None
        if not ti.xcom_pull(task_ids=self.endpoint_task_id):
            self.log.info("keep_endpoint_minutes=%d, but the endpoint never served: deleting it too", minutes)
            return None
        pool = ti.xcom_pull(task_ids=self.pool_task_id)
        return Keep(NodePoolRef.from_dict(pool["pool"]), datetime.now(UTC) + timedelta(minutes=minutes))

    def _sweep_objects(
        self, backend: CloudBackend, label: dict[str, str], keep: Keep | None
    ) -> tuple[list[str], list[str]]:
        """Delete the run's objects on this cluster, except the endpoint on the kept pool's cluster, which
        is stamped instead (its Deployment's pods go with the Deployment later)."""
        client = api_client(backend.kube_config())
        selector = ",".join(f"{k}={v}" for k, v in label.items())
        found = labelled_objects(client, JOB_NAMESPACE, selector)
        where = (backend.cluster.cloud, backend.cluster.name)
        on_kept_cluster = keep is not None and where == (keep.pool.cloud, keep.pool.cluster)
        kept = [o for o in found if on_kept_cluster and (o.kind in ENDPOINT_KINDS or o.owned)]
        deleted = [o for o in found if o not in kept]
        delete_objects(client, JOB_NAMESPACE, deleted)
        if keep is not None and kept:
            label_objects(client, JOB_NAMESPACE, [o for o in kept if not o.owned], naming.expiry_label(keep.until))
        if deleted:
            self.log.info("deleted on %s: %s", backend.cluster.name, ", ".join(o.ref for o in deleted))
        return [o.ref for o in deleted], [o.ref for o in kept if not o.owned]

    def _clusters(self, context: Context) -> list[Cluster]:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        configured = clusters()
        found: dict[tuple[str, str], Cluster] = {}
        for choice in plan_choices(planned["plan"]) if planned else []:
            try:
                cluster = configured.for_region(choice["cloud"], choice["region"])
            except ClusterConfigError:
                continue
            found[cluster.key] = cluster
        return list(found.values())

    def _wait_until_gone(
        self, backends: list[CloudBackend], label: dict[str, str], keep: Keep | None, failures: dict[str, str]
    ) -> list[NodePoolStatus]:
        """The run's pools not yet gone (the kept one aside) once all are gone or the timeout has passed.

        A cluster whose listing fails while waiting is noted in ``failures`` and no longer waited on."""
        deadline = time.monotonic() + self.delete_timeout_s
        waiting_on = list(backends)
        while True:
            left = []
            for backend in list(waiting_on):
                try:
                    statuses = backend.list_node_pools(label)
                except Exception as exc:  # any cloud failure: note it, go on waiting on the other clusters
                    _note(failures, f"checking node pools on {_where(backend)}", exc, self.log)
                    waiting_on.remove(backend)
                    continue
                left += [s for s in statuses if s.state is not PoolState.GONE and (keep is None or s.ref != keep.pool)]
            if not left or time.monotonic() >= deadline:
                return left
            self.log.info("waiting for %d node pool(s) to finish deleting", len(left))
            time.sleep(self.poll_interval_s or poll_interval_s_setting())


def _where(backend: CloudBackend) -> str:
    return f"{backend.cluster.cloud}/{backend.cluster.name}"


def _note(failures: dict[str, str], what: str, exc: Exception, log: Any) -> None:
    """A step that failed on one cluster: logged now, raised with the others at the end of the teardown."""
    log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
    failures[what] = f"{type(exc).__name__}: {exc}"
