"""``CostReportOperator``: what the run's GPU pool actually cost, against the plan's estimate, in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from gpuflow.core.handoffs import PlanHandoff, PoolHandoff
from gpuflow.operators.runtime import run_of
from gpuflow.state.ledger import CostEntry, Ledger


class CostReportOperator(BaseOperator):
    """Record GPU-hours held x price for the pool the run ended on, from its request until now (after teardown).

    A pool kept for the endpoint (keep-time) goes on costing until its expiry; that is logged, not recorded.

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
        requested = PoolHandoff.from_xcom(created)
        ready = PoolHandoff.from_xcom(ti.xcom_pull(task_ids=self.wait_task_id) or created)
        run = run_of(context)
        entry = CostEntry.for_pool(
            dag_id=run.dag_id,
            run_id=run.run_id,
            choice=ready.choice,
            held_from=datetime.fromisoformat(requested.requested_at),
            held_until=datetime.now(UTC),
            estimated_usd=PlanHandoff.from_xcom(ti.xcom_pull(task_ids=self.plan_task_id)).estimated_total_usd,
        )
        Ledger().record(entry)
        self.log.info("cost of this run:\n%s", entry.table())
        kept = (ti.xcom_pull(task_ids=self.teardown_task_id) or {}).get("kept")
        if kept:
            until = datetime.fromisoformat(kept["expires_at"])
            hours = max(0.0, (until - entry.held_until).total_seconds() / 3600)
            self.log.info(
                "the endpoint's pool is kept until %s and keeps costing %.4f USD/h until then (about %.4f USD "
                "more), which this entry does not include",
                until.strftime("%Y-%m-%d %H:%M:%S UTC"),
                entry.hourly_usd,
                hours * entry.hourly_usd,
            )
        return {"gpu_hours": entry.gpu_hours, "cost_usd": entry.cost_usd, "estimated_usd": entry.estimated_usd}
