"""gpu_plan runs in Airflow (dag.test on the session's SQLite DB) and fails fast on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dag(airflow_db: Path) -> Any:
    """A fresh DAG per test: ``dag.test`` writes a run's conf into the DAG object's params."""
    return DagBag(dag_folder=str(ROOT / "dags" / "gpu_plan.py")).dags["gpu_plan"]


def test_plan_task_returns_the_cheapest_spot_h100x8(dag: Any) -> None:
    run = dag.test(run_conf={"accelerator": "H100", "count": 8, "capacity": "spot"})
    assert run.state == "success"
    (ti,) = run.get_task_instances()
    plan = ti.xcom_pull(task_ids="plan")["plan"]
    assert plan["chosen"]["capacity_type"] == "spot"
    assert plan["chosen"]["accelerator"] == "H100"
    assert plan["fallbacks"]


def test_unsatisfiable_request_fails_the_run_without_retrying(dag: Any) -> None:
    run = dag.test(run_conf={"accelerator": "H100", "count": 8, "max_hourly_usd": 40, "capacity": "on-demand"})
    assert run.state == "failed"
    (ti,) = run.get_task_instances()
    assert ti.try_number == 1
