"""Clear a task of a run and run what was cleared again, in the same run, as the UI's Clear and a scheduler do.

``dag.test`` cannot: it always starts a new run (it deletes any run at the same logical date). This drives an
existing run with ``dag.test``'s own loop: tasks run in this process through Airflow's ``_run_task`` (Airflow
3.3's helper for ``dag.test``), triggers inline, retry delays waited out.
"""

from __future__ import annotations

import re
import time
from typing import Any

from airflow.models.dagrun import DagRun
from airflow.models.serialized_dag import SerializedDagModel
from airflow.sdk.definitions.dag import _run_task
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from sqlalchemy import select

TIMEOUT_S = 300


def clear_and_rerun(dag: Any, run: DagRun, task_id: str, *, mark_success_pattern: str | None = None) -> DagRun:
    """Clear ``task_id`` with its downstream tasks in ``run`` (Airflow adds the setups and teardowns of what is
    cleared), then run the run to its end; tasks matching ``mark_success_pattern`` are marked done, not run."""
    with create_session() as session:
        scheduler_dag = SerializedDagModel.get_dag(dag.dag_id, session=session)
        assert scheduler_dag is not None
        downstream = scheduler_dag.partial_subset([task_id], include_downstream=True, include_upstream=False)
        scheduler_dag.clear(
            task_ids=list(downstream.task_dict), run_id=run.run_id, dag_run_state=DagRunState.RUNNING, session=session
        )
    return run_to_end(dag, run.run_id, mark_success_pattern)


def run_to_end(dag: Any, run_id: str, mark_success_pattern: str | None = None) -> DagRun:
    """``dag.test``'s loop on an existing run, with a wall-clock limit."""
    skip = re.compile(mark_success_pattern) if mark_success_pattern else None
    deadline = time.monotonic() + TIMEOUT_S
    with create_session() as session:
        run: DagRun | None = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        assert run is not None
        run.dag = SerializedDagModel.get_dag(dag.dag_id, session=session)
        while run.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            scheduled = [
                ti for ti in run.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED
            ]
            if not scheduled:
                time.sleep(1)  # a retry delay, or the run is about to end
            if time.monotonic() > deadline:
                states = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
                raise AssertionError(f"run {run_id} still running after {TIMEOUT_S}s: {states}")
            for ti in scheduled:
                if skip and skip.fullmatch(ti.task_id):
                    ti.set_state(TaskInstanceState.SUCCESS)
                else:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        return run
