"""``JanitorOperator``: reclaim what gpuflow runs left on every configured cluster, and say what it saved.

The rules are ``gpuflow.core.janitor`` and the cluster work ``gpuflow.sweep`` (joined in ``gpuflow.reclaiming``);
this adapter adds what only Airflow knows (the state of each owning run, through the Task SDK) and turns the
outcome into a log table, an XCom summary, and a failed task when a cluster could not be swept. It closes the
cost ledger's open entries of the pools it deletes (or finds gone) with the time it did, so a pool a teardown
could not delete, or kept, is counted to its real end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.core.admission import releasable
from gpuflow.core.catalog import load_catalog
from gpuflow.core.janitor import NODE_POOL, Found, RunInfo, RunState, Verdict, judge, ledger_closures, summarize, table
from gpuflow.core.settings import catalog_source, janitor_grace_hours
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters
from gpuflow.reclaiming import Reclaimed, found_in, listed_pools, reclaim
from gpuflow.state.admission import Leases
from gpuflow.state.ledger import Ledger
from gpuflow.state.runs import RunRegistry
from gpuflow.sweep import Holdings, survey


class JanitorOperator(BaseOperator):
    """Delete node pools and endpoint objects labelled as gpuflow's that are expired or whose run has ended
    (``gpuflow.core.janitor`` has every rule); return what was reclaimed, what was kept and what it saves.

    :param grace_hours: how long resources of a run Airflow does not know are spared (default
        ``GPUFLOW_JANITOR_GRACE_HOURS``, else 6).
    """

    ui_color = "#f6dede"

    def __init__(self, *, grace_hours: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.grace_hours = grace_hours

    def execute(self, context: Context) -> dict[str, Any]:
        now = datetime.now(UTC)
        grace = timedelta(hours=self.grace_hours if self.grace_hours is not None else janitor_grace_hours())
        sweeps = [survey(cluster, JOB_NAMESPACE) for cluster in clusters().by_region.values()]
        offers = load_catalog(catalog_source()).offers
        found = [item for sweep in sweeps for item in found_in(sweep, offers)]
        verdicts = judge(found, self._runs((f.run_key for f in found if f.run_key), now), now, grace)
        reclaimed = reclaim(sweeps, verdicts)
        failed = reclaimed.failed
        self._close_ledger(verdicts, reclaimed, listed_pools(sweeps), now)
        self._release_leases(sweeps, found, now)
        summary = summarize(verdicts, now)
        self.log.info("swept %d cluster(s):\n%s", len(sweeps), table(verdicts))
        self.log.info(
            "reclaimed %d resource(s), kept %d: %d GPU(s) released, %.4f USD/h stopped%s, %.4f GPU-hours overdue",
            summary.reclaimed,
            summary.kept,
            summary.gpus_released,
            summary.usd_per_hour_stopped,
            f" ({summary.unpriced_pools} pool(s) not in the catalog)" if summary.unpriced_pools else "",
            summary.overdue_gpu_hours,
        )
        result = {
            **summary.to_dict(),
            "resources": [
                {
                    "action": "deleted" if v.delete else "kept",
                    "kind": v.found.kind,
                    "where": v.found.where,
                    "name": v.found.name,
                    "gpus": v.found.gpus,
                    "reason": v.reason,
                }
                for v in verdicts
            ],
            "failed_clusters": failed,
        }
        if failed:
            context["ti"].xcom_push(key="summary", value=result)
            errors = "; ".join(f"{where}: {error}" for where, error in sorted(failed.items()))
            raise AirflowException(f"the janitor could not sweep {len(failed)} cluster(s) (the others were): {errors}")
        return result

    def _close_ledger(
        self, verdicts: list[Verdict], reclaimed: Reclaimed, listed: dict[str, frozenset[str]], now: datetime
    ) -> None:
        """Close the open cost entries of the pools this sweep deleted, or found gone, with the time it did."""
        ledger = Ledger()
        deleted = [ref.path for ref in reclaimed.deleted_pools]
        for pool, why in ledger_closures(ledger.open_pools(), verdicts, deleted, listed).items():
            for entry in ledger.close(pool, now, why):
                self.log.info(
                    "closed the open cost entry of %s (run %s): %.4f GPU-hours, %.4f USD (%s)",
                    pool,
                    entry.run_id,
                    entry.gpu_hours,
                    entry.cost_usd,
                    why,
                )

    def _release_leases(self, sweeps: list[Holdings], found: list[Found], now: datetime) -> None:
        """Give back the GPU leases of runs that ended without their teardown doing it, once none of their pools
        is left (``gpuflow.core.admission.releasable``)."""
        leases = Leases()
        open_runs = {lease.run_key: _state(lease.dag_id, lease.run_id).value for lease in leases.open_leases()}
        if not open_runs:
            return
        complete = not any(s.failures or s.departing for s in sweeps)
        with_pools = {f.run_key for f in found if f.kind == NODE_POOL and f.run_key}
        for key in releasable(open_runs, with_pools, complete_listing=complete):
            leases.release(key, now=now)
            self.log.info("released the GPU lease of run %s: the run ended and none of its pools is left", key)

    def _runs(self, keys: Iterable[str], now: datetime) -> dict[str, RunInfo]:
        """Each label's run state from Airflow, through the run registry (labels are one-way digests)."""
        registered = RunRegistry().known(keys, now=now)
        return {
            key: RunInfo(
                _state(run.dag_id, run.run_id) if run.dag_id and run.run_id else RunState.UNKNOWN, run.known_since
            )
            for key, run in registered.items()
        }


def _state(dag_id: str, run_id: str) -> RunState:
    """The run's state from the API server (the Task SDK: tasks may not read the metadata DB); UNKNOWN when
    Airflow has no such run (counted first: a missing run's state is an API error whose type depends on how
    the task is supervised). A state this module does not know is read as running: kept, never deleted."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    if not RuntimeTaskInstance.get_dr_count(dag_id, run_ids=[run_id]):
        return RunState.UNKNOWN
    state = RuntimeTaskInstance.get_dagrun_state(dag_id, run_id)
    try:
        return RunState(getattr(state, "value", state))  # the SDK's DagRunState: its str() is not its value
    except ValueError:
        return RunState.RUNNING
