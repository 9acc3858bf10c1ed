"""``CostReportOperator``: what the run's GPU pools actually cost, against the plan's estimate, in the ledger.

A run holds one pool segment after another: the pool it was first provisioned on, and one more per recovery
from a preemption (``train`` records each lost segment when it happens). This task records the last one, up to
the teardown, and reports them all with what the preemptions cost.

The last entry is open when the pool may still be held: the teardown could not confirm it deleted (or said
nothing), or kept it for the endpoint. The janitor closes it with the time it reclaims the pool, so the ledger
never under-counts; the report says which entries are open and why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from gpuflow.core import naming
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff, Unconfirmed
from gpuflow.core.nodepool import NodePoolRef
from gpuflow.core.recovery import TrainingState
from gpuflow.operators.runtime import run_of
from gpuflow.operators.teardown import UNCONFIRMED_XCOM
from gpuflow.state.ledger import NOT_CONFIRMED, CostEntry, Ledger
from gpuflow.state.training import TrainingStates


class CostReportOperator(BaseOperator):
    """Record GPU-hours held x price for the pool the run ended on, from when it began paying for it until now
    (after teardown), and report every segment of the run.

    A pool kept for the endpoint (keep-time), or one the teardown could not confirm deleted, is recorded as an
    open entry, which the janitor closes when it deletes the pool.

    :param plan_task_id: the plan (for the estimate).
    :param create_task_id: the setup task (for when the pool was requested).
    :param wait_task_id: the waiting task (for the option the run ended on, after any failover).
    :param teardown_task_id: the teardown (for what it kept, and until when).
    """

    template_fields = ("plan_task_id", "create_task_id", "wait_task_id", "teardown_task_id")
    ui_color = "#eef0f7"

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        create_task_id: str = "create_node_pool",
        wait_task_id: str = "wait_node_pool",
        teardown_task_id: str = "teardown",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.create_task_id = create_task_id
        self.wait_task_id = wait_task_id
        self.teardown_task_id = teardown_task_id

    def execute(self, context: Context) -> dict[str, Any] | None:
        ti = context["ti"]
        created = ti.xcom_pull(task_ids=self.create_task_id)
        if not created:
            self.log.info("no node pool was requested: nothing was spent")
            return None
        run = run_of(context)
        training = TrainingStates().load(naming.run_key(run.dag_id, run.run_id))
        pool, held_from = self._last_segment(context, created, training)
        still_held = self._still_held(context, pool.pool)
        last = CostEntry.for_pool(
            dag_id=run.dag_id,
            run_id=run.run_id,
            choice=pool.choice,
            held_from=held_from,
            held_until=datetime.now(UTC),
            estimated_usd=PlanHandoff.from_xcom(ti.xcom_pull(task_ids=self.plan_task_id)).estimated_total_usd,
            ended_by=still_held or "teardown",
            pool=pool.pool,
            is_open=still_held is not None,
        )
        ledger = Ledger()
        ledger.record(last)
        segments = ledger.entries(run.dag_id, run.run_id)
        self.log.info("cost of this run:\n%s", "\n\n".join(entry.table() for entry in segments))
        summary = _summary(segments, training)
        self.log.info(
            "total%s: %d pool segment(s), %.4f GPU-hours, %.4f USD (estimate %.4f USD); %d recovery(ies) from node "
            "losses cost about %.4f GPU-hours (%.0f s without training or serving)",
            f" so far ({summary['open']} entry(ies) open until the janitor closes them)" if summary["open"] else "",
            summary["segments"],
            summary["gpu_hours"],
            summary["cost_usd"],
            summary["estimated_usd"],
            summary["recoveries"],
            summary["gpu_hours_lost"],
            summary["seconds_lost"],
        )
        self._log_kept(context, last)
        return summary

    def _last_segment(
        self, context: Context, created: dict[str, Any], training: TrainingState | None
    ) -> tuple[PoolHandoff, datetime]:
        """The pool the run ended on and when its segment began: training's record after a recovery, else the
        pool the wait made ready, paid for since the first request."""
        if training is not None:
            return PoolHandoff.from_xcom(training.pool), datetime.fromisoformat(training.segment_started_at)
        ready = PoolHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.wait_task_id) or created)
        return ready, datetime.fromisoformat(PoolHandoff.from_xcom(created).requested_at)

    def _still_held(self, context: Context, pool: NodePoolRef) -> str | None:
        """Why the pool may still be held (its entry stays open), or None when the teardown confirmed it deleted."""
        ti = context["ti"]
        kept = (ti.xcom_pull(task_ids=self.teardown_task_id) or {}).get("kept")
        if kept and NodePoolRef.from_dict(kept["pool"]) == pool:
            if kept.get("endpoint"):
                return f"the pool serves endpoint {kept['endpoint']}"
            return f"the endpoint's pool is kept until {kept['expires_at']}"
        unconfirmed = ti.xcom_pull(task_ids=self.teardown_task_id, key=UNCONFIRMED_XCOM)
        if unconfirmed is None or Unconfirmed.from_xcom(unconfirmed).covers(pool):
            return NOT_CONFIRMED
        return None

    def _log_kept(self, context: Context, last: CostEntry) -> None:
        kept = (context["ti"].xcom_pull(task_ids=self.teardown_task_id) or {}).get("kept")
        if kept and kept.get("endpoint"):
            self.log.info(
                "the pool serves endpoint %s and keeps costing %.4f USD/h: its entry stays open until a later "
                "revision replaces it (or gpu_endpoint_delete deletes it), which closes it",
                kept["endpoint"],
                last.hourly_usd,
            )
        elif kept:
            until = datetime.fromisoformat(kept["expires_at"])
            hours = max(0.0, (until - last.held_until).total_seconds() / 3600)
            self.log.info(
                "the endpoint's pool is kept until %s and keeps costing %.4f USD/h until then (about %.4f USD "
                "more): its entry stays open until the janitor deletes the pool and closes it",
                until.strftime("%Y-%m-%d %H:%M:%S UTC"),
                last.hourly_usd,
                hours * last.hourly_usd,
            )


def _summary(segments: list[CostEntry], training: TrainingState | None) -> dict[str, Any]:
    """The run's totals over its segments, and what its recoveries cost."""
    recoveries = training.recoveries if training is not None else ()
    seconds_lost = sum(
        (datetime.fromisoformat(r.resumed_at) - datetime.fromisoformat(r.lost_at)).total_seconds()
        for r in recoveries
        if r.resumed_at
    )
    return {
        "gpu_hours": sum(e.gpu_hours for e in segments),
        "cost_usd": sum(e.cost_usd for e in segments),
        "estimated_usd": sum(e.estimated_usd for e in segments),
        "segments": len(segments),
        "open": sum(e.is_open for e in segments),
        "recoveries": len(recoveries),
        "gpu_hours_lost": sum(r.gpu_hours_lost or 0.0 for r in recoveries),
        "seconds_lost": seconds_lost,
    }
