"""The ``gpu`` pool caps how many GPU jobs run at once: which tasks hold a slot, the pool every deployment
imports, and the scheduler's own slot decision on runs of gpu_train_and_serve.

``dag.test`` ignores pools, so the cap is proved with the scheduler's selection step
(``SchedulerJobRunner._executable_task_instances_to_queued``, the query that applies pool limits) on runs whose
task states are set as a scheduler and triggerer would leave them; everything is rolled back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.jobs.job import Job
from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
from airflow.models.dag import DagModel
from airflow.models.pool import Pool
from airflow.models.serialized_dag import SerializedDagModel
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType, DagRunType
from sqlalchemy import update
from sqlalchemy.orm import Session

from gpuflow.pipeline import GPU_POOL

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "gpu_train_and_serve"
GPU_TASKS = {
    "create_node_pool",
    "wait_node_pool",
    "train",
    "deploy_endpoint",
    "wait_endpoint",
    "smoke_test",
    "benchmark",
    "promote",
}


@pytest.fixture
def dag(airflow_db: Path) -> Any:
    return DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py")).dags[DAG_ID]


def test_gpu_holding_tasks_take_a_slot_and_cleanup_never_waits_for_one(dag: Any) -> None:
    in_pool = {task.task_id for task in dag.tasks if task.pool == GPU_POOL}
    assert in_pool == GPU_TASKS
    assert {"teardown", "cost_report", "watcher", "plan"}.isdisjoint(in_pool)


def test_the_pool_every_deployment_imports_counts_deferred_tasks(airflow_db: Path) -> None:
    shipped = json.loads((ROOT / "include" / "config" / "pools.json").read_text())[GPU_POOL]
    pool = Pool.get_pool(GPU_POOL)
    assert pool is not None, "the harness did not import include/config/pools.json"
    assert pool.include_deferred is True
    assert shipped["include_deferred"] is True
    assert pool.slots == shipped["slots"] >= 1


@pytest.fixture
def scheduler_session(dag: Any) -> Iterator[Session]:
    """The DAG as the DAG processor would store it, unpaused, in a transaction that is rolled back."""
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=dag.fileloc, bundle_path=ROOT / "dags"), "dags-folder", None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == DAG_ID).values(is_paused=False))
        yield session
        session.rollback()


def new_runs(session: Session, count: int) -> list[Any]:
    dag = SerializedDagModel.get_dag(DAG_ID, session=session)
    assert dag is not None
    return [
        dag.create_dagrun(
            run_id=f"gpu_slots_{index}",
            run_after=datetime.now(UTC),
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            session=session,
        )
        for index in range(count)
    ]


def set_states(session: Session, run: Any, **states: TaskInstanceState) -> None:
    for task_id, state in states.items():
        run.get_task_instance(task_id, session=session).state = state
    session.flush()


def queued_by_the_scheduler(session: Session) -> set[tuple[str, str]]:
    """(run_id, task_id) of every task instance the scheduler would queue now."""
    tis = SchedulerJobRunner(job=Job())._executable_task_instances_to_queued(max_tis=32, session=session)
    return {(ti.run_id, ti.task_id) for ti in tis}


def test_a_full_gpu_pool_holds_back_a_new_run_and_gives_a_freed_slot_to_a_run_in_flight(
    scheduler_session: Session,
) -> None:
    session = scheduler_session
    pool = Pool.get_pool(GPU_POOL, session=session)
    assert pool is not None
    *holding, newest = new_runs(session, pool.slots + 1)
    # Every slot is held by a task waiting in the triggerer: a deferred task holds no worker, but a node pool.
    for run in holding:
        set_states(session, run, plan=TaskInstanceState.SUCCESS, create_node_pool=TaskInstanceState.SUCCESS)
        set_states(session, run, wait_node_pool=TaskInstanceState.DEFERRED)
    set_states(session, newest, plan=TaskInstanceState.SUCCESS, create_node_pool=TaskInstanceState.SCHEDULED)
    assert queued_by_the_scheduler(session) == set()

    # The first run's pool is ready: its train and the newest run's create_node_pool compete for the slot.
    first = holding[0]
    set_states(session, first, wait_node_pool=TaskInstanceState.SUCCESS, train=TaskInstanceState.SCHEDULED)
    assert queued_by_the_scheduler(session) == {(first.run_id, "train")}
