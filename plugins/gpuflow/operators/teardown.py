"""Delete everything a run created, on every cluster it could have touched, and prove it is gone.

Kubernetes objects (the endpoint's Deployment, Service and Secret, a training pod) go first, while their
nodes still exist; then the node pools. The cluster work is the sweep the janitor also uses (``gpuflow.sweep``);
this task adds its own rule (``teardown_decision``) and waits until the pools are gone.

It does not trust XCom for what exists: failover may have created several pools, and a task may have
died before recording one. It lists by the run's label on every cluster of the plan's options instead.
A cluster it cannot reach (an API down, expired credentials) does not spare the others: every step runs on
every cluster, and the task then fails naming what it could not do.

Keep-time: when the request asked to keep the endpoint N minutes (``keep_endpoint_minutes``) and the endpoint
did serve, its Deployment (with its pods), Service and Secret and the pool serving them stay, each labelled
``gpuflow.io/expires-at`` (and ``gpuflow.io/kept-nodes``, the count the endpoint watchdog restores if the cloud
shrinks the pool); everything else of the run (the training pod, pools failover abandoned, objects on
other clusters) is deleted as usual. The ``gpu_janitor`` DAG deletes the kept ones once that time has passed.

Named endpoint: when the run's revision was promoted onto its named endpoint (``promote``'s XCom ``promoted``), the
revision, the front Service and their pool are kept the same way, stamped with the endpoint's label
(``gpuflow.io/endpoint``) and no expiry: they serve until a later run's revision replaces them or
``gpu_endpoint_delete`` deletes the endpoint.

Whether it succeeds or fails, it pushes what it could not confirm deleted (``Unconfirmed``, XCom key
``unconfirmed``): the cost report records such a pool as an open ledger entry, which the janitor closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.core import naming
from gpuflow.core.clusters import Cluster, ClusterConfigError
from gpuflow.core.handoffs import PlanHandoff, Unconfirmed
from gpuflow.core.janitor import NODE_POOL
from gpuflow.core.nodepool import NodePoolRef
from gpuflow.core.settings import poll_interval_s as poll_interval_s_setting
from gpuflow.kube.cluster import ENDPOINT_KINDS
from gpuflow.operators.recovering import current_pool
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters, run_of
from gpuflow.state.admission import Leases
from gpuflow.sweep import Decision, Holdings, Key, failed_clusters, survey, sweep, wait_until_gone

DEFAULT_DELETE_TIMEOUT_S = 15 * 60
UNCONFIRMED_XCOM = "unconfirmed"  # what the teardown could not confirm deleted (``Unconfirmed``)
PROMOTED_XCOM = "promoted"  # ``promote``'s record that the run's revision serves its named endpoint


@dataclass(frozen=True, slots=True)
class Keep:
    """The serving pool (and the endpoint on its cluster) to keep, until when (None: as a named endpoint's live
    revision, ``endpoint``, until replaced or deleted), and with how many nodes (the endpoint watchdog restores
    that count if the cloud shrinks the pool: ``gpuflow.core.watchdog``)."""

    pool: NodePoolRef
    until: datetime | None
    nodes: int = 1
    endpoint: str = ""

    @property
    def stamp(self) -> dict[str, str]:
        """The labels the kept resources get."""
        held = naming.expiry_label(self.until) if self.until else {naming.ENDPOINT_LABEL: self.endpoint}
        return {**held, naming.KEPT_NODES_LABEL: str(self.nodes)}

    def to_dict(self, objects: list[str]) -> dict[str, Any]:
        """For XCom: the cost report reads how long the kept pool goes on costing."""
        return {
            "pool": self.pool.to_dict(),
            "objects": objects,
            "expires_at": self.until.isoformat() if self.until else None,
            "expires_at_epoch": int(self.until.timestamp()) if self.until else None,
            "endpoint": self.endpoint or None,
        }

    def describe(self) -> str:
        if self.until is None:
            return (
                f"as the live revision of endpoint {self.endpoint} (until replaced or deleted with gpu_endpoint_delete)"
            )
        return f"until {self.until.strftime('%Y-%m-%d %H:%M:%S UTC')}; the gpu_janitor DAG deletes them after that"


class TeardownOperator(BaseOperator):
    """Delete every Kubernetes object and node pool labelled with this run (keeping a served endpoint and its
    pool when the request asked to); fail if anything it deleted is left after the timeout.

    :param plan_task_id: the task whose XCom holds the plan (the clusters to sweep come from its options)
        and the job (``keep_endpoint_minutes``).
    :param pool_task_id: the task whose XCom holds the pool training finished on: the one to keep, unless a
        recovery moved the endpoint since (the run's state in the state store says where it ended).
    :param endpoint_task_id: the task whose XCom says the endpoint served (an endpoint that never did is
        not kept).
    :param promote_task_id: the task that pushes ``promoted`` when the run's revision took its named endpoint over.
    :param delete_timeout_s: how long deletions may take before the run is failed with what is left.
    :param poll_interval_s: seconds between checks while deletions finish (default ``GPUFLOW_POLL_INTERVAL_S``).
    """

    template_fields = ("plan_task_id", "pool_task_id", "endpoint_task_id", "promote_task_id")
    ui_color = "#f6dede"

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        pool_task_id: str = "train",
        endpoint_task_id: str = "wait_endpoint",
        promote_task_id: str = "promote",
        delete_timeout_s: float = DEFAULT_DELETE_TIMEOUT_S,
        poll_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.pool_task_id = pool_task_id
        self.endpoint_task_id = endpoint_task_id
        self.promote_task_id = promote_task_id
        self.delete_timeout_s = delete_timeout_s
        self.poll_interval_s = poll_interval_s

    def execute(self, context: Context) -> dict[str, Any]:
        run = run_of(context)
        label = {naming.RUN_LABEL: naming.run_key(run.dag_id, run.run_id)}
        keep = self._keep(context)
        holdings = [survey(c, JOB_NAMESPACE, label, settled_out=False) for c in self._clusters(context)]
        decision = teardown_decision(holdings, keep)
        # One cluster's failure (expired credentials, an API down) must not spare another cluster's GPUs:
        # every step runs on every cluster, and what failed is raised at the end, with what is left.
        swept = sweep(holdings, decision, whole_clusters=False)
        left = wait_until_gone(
            swept, label, decision, self.delete_timeout_s, self.poll_interval_s or poll_interval_s_setting()
        )
        problems = [f"{where}: {failures}" for where, failures in failed_clusters(holdings).items()]
        unconfirmed = Unconfirmed(
            tuple(s.ref for s in left), tuple((h.cluster.cloud, h.cluster.name) for h in holdings if h.failures)
        )
        context["ti"].xcom_push(key=UNCONFIRMED_XCOM, value=unconfirmed.to_xcom())  # the cost report's, even on failure
        if left or problems:
            if left:
                names = ", ".join(f"{s.ref.cloud}/{s.ref.cluster}/{s.ref.name} ({s.state.value})" for s in left)
                problems.append(f"{len(left)} node pool(s) left after {self.delete_timeout_s:.0f}s: {names}")
            raise AirflowException(
                f"teardown incomplete ({len(swept.deleted_pools)} node pool(s) deleted; the janitor retries what "
                f"is labelled with the run): " + "; ".join(problems)
            )
        self.log.info("teardown complete: %d node pool(s) deleted, none left", len(swept.deleted_pools))
        if keep is None and Leases().release(label[naming.RUN_LABEL], now=datetime.now(UTC)):
            self.log.info("GPU lease released: every pool of the run is gone")
        kept = None
        if keep is not None:
            kept = keep.to_dict(swept.stamped_objects)
            self.log.info(
                "kept node pool %s on %s and %s %s",
                keep.pool.name,
                keep.pool.cluster,
                ", ".join(swept.stamped_objects) or "no endpoint object",
                keep.describe(),
            )
        return {
            "deleted_pools": [ref.to_dict() for ref in swept.deleted_pools],
            "deleted_objects": swept.deleted_objects,
            "kept": kept,
        }

    def _keep(self, context: Context) -> Keep | None:
        """What to keep: the serving pool, when the run's revision took its named endpoint over, or when the
        request asked for keep-time and the endpoint served."""
        ti = context["ti"]
        promoted = ti.xcom_pull(task_ids=self.promote_task_id, key=PROMOTED_XCOM)
        if promoted:
            pool = current_pool(context, self.pool_task_id)
            return Keep(pool.pool, None, int(pool.choice["nodes"]), endpoint=promoted["endpoint"])
        planned = self._plan(context)
        minutes = int((planned.job or {}).get("keep_endpoint_minutes") or 0) if planned else 0
        if not minutes:
            return None
        if not ti.xcom_pull(task_ids=self.endpoint_task_id):
            self.log.info("keep_endpoint_minutes=%d, but the endpoint never served: deleting it too", minutes)
            return None
        pool = current_pool(context, self.pool_task_id)
        return Keep(pool.pool, datetime.now(UTC) + timedelta(minutes=minutes), int(pool.choice["nodes"]))

    def _plan(self, context: Context) -> PlanHandoff | None:
        """The plan, if the plan task got as far as making one."""
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        return PlanHandoff.from_xcom(planned) if planned else None

    def _clusters(self, context: Context) -> list[Cluster]:
        planned = self._plan(context)
        configured = clusters()
        found: dict[tuple[str, str], Cluster] = {}
        for choice in planned.choices if planned else []:
            try:
                cluster = configured.for_region(choice["cloud"], choice["region"])
            except ClusterConfigError:
                continue
            found[cluster.key] = cluster
        return list(found.values())


def teardown_decision(holdings: list[Holdings], keep: Keep | None) -> Decision:
    """Delete everything of the run, except, when there is a ``keep``, its pool and the endpoint on that
    pool's cluster, which are stamped with the expiry instead (the Deployment's pods go with it later)."""
    kept_cluster = (keep.pool.cloud, keep.pool.cluster) if keep is not None else None
    delete: set[Key] = set()
    stamped: set[Key] = set()
    for cluster in holdings:
        on_kept_cluster = (cluster.cluster.cloud, cluster.cluster.name) == kept_cluster
        for obj in cluster.objects:
            key = cluster.key(obj.kind, obj.name)
            if not (on_kept_cluster and (obj.kind in ENDPOINT_KINDS or obj.owned)):
                delete.add(key)
            elif not obj.owned:
                stamped.add(key)
        for status in cluster.pools:
            key = cluster.key(NODE_POOL, status.ref.name)
            (stamped if keep is not None and status.ref == keep.pool else delete).add(key)
    return Decision(frozenset(delete), frozenset(stamped), keep.stamp if keep is not None else {})
