"""gpu_plan: rank the GPU price catalog for a request and explain the choice, without provisioning anything.

Trigger it from the UI form or the REST API to see where a job would run and what it would cost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from gpuflow.operators.plan import PlanOperator
from gpuflow.params import planning_params

with DAG(
    dag_id="gpu_plan",
    description="Choose the cheapest cloud offer for a GPU request and explain why (no provisioning).",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["gpuflow", "planning"],
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params=planning_params(),
    doc_md=__doc__,
) as dag:
    PlanOperator(task_id="plan")
