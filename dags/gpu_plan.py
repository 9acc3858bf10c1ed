"""gpu_plan: rank the GPU price catalog for a request and explain the choice, without provisioning anything.

Trigger it from the UI form or the REST API to see where a job would run and what it would cost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from gpuflow.core.catalog import CLOUDS
from gpuflow.core.request import DEFAULT_SPOT_ALLOWANCE, MAX_ACCELERATORS_PER_NODE, MAX_NODES, CapacityPreference
from gpuflow.operators.plan import PlanOperator

with DAG(
    dag_id="gpu_plan",
    description="Choose the cheapest cloud offer for a GPU request and explain why (no provisioning).",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["gpuflow", "planning"],
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "accelerator": Param(
            "H100",
            type=["null", "string"],
            title="Accelerator",
            description="GPU or TPU model, e.g. H100, A100-80GB, L4, tpu-v5p-8. Leave empty to choose by memory.",
            section="What to run on",
        ),
        "min_memory_gib": Param(
            None,
            type=["null", "number"],
            minimum=1,
            title="Minimum memory per accelerator (GiB)",
            description="Any accelerator with at least this much memory (with or instead of a model name).",
            section="What to run on",
        ),
        "count": Param(
            8,
            type="integer",
            minimum=1,
            maximum=MAX_ACCELERATORS_PER_NODE,
            title="Accelerators per node",
            section="What to run on",
        ),
        "nodes": Param(1, type="integer", minimum=1, maximum=MAX_NODES, title="Nodes", section="What to run on"),
        "capacity": Param(
            CapacityPreference.SPOT_THEN_ON_DEMAND.value,
            type="string",
            enum=[c.value for c in CapacityPreference],
            title="Capacity type",
            description="spot-then-on-demand tries every spot offer before any on-demand one.",
            section="Where",
        ),
        "clouds": Param(
            list(CLOUDS),
            type="array",
            items={"type": "string", "enum": list(CLOUDS)},
            minItems=1,
            title="Allowed clouds",
            section="Where",
        ),
        "regions": Param(
            ["*"],
            type="array",
            items={"type": "string", "pattern": "^[a-z0-9*?\\[\\]-]+$"},
            minItems=1,
            title="Allowed regions",
            description="Region names or globs, e.g. us-* or europe-west4.",
            section="Where",
        ),
        "max_hourly_usd": Param(
            None, type=["null", "number"], exclusiveMinimum=0, title="Max USD per hour (whole pool)", section="Cost"
        ),
        "budget_usd": Param(
            None, type=["null", "number"], exclusiveMinimum=0, title="Budget in USD (whole job)", section="Cost"
        ),
        "estimated_hours": Param(
            1.0, type="number", exclusiveMinimum=0, title="Estimated hours the pool is held", section="Cost"
        ),
        "spot_allowance": Param(
            DEFAULT_SPOT_ALLOWANCE,
            type="number",
            minimum=0,
            maximum=5,
            title="Spot preemption allowance",
            description="Extra share of GPU-hours budgeted for work redone after spot preemptions.",
            section="Cost",
        ),
    },
    doc_md=__doc__,
) as dag:
    PlanOperator(task_id="plan")
