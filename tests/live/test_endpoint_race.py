"""Two runs promoting onto one named endpoint at once, on running Airflow: the promotions take turns (the endpoint's
lock in the state database), both runs succeed, and the endpoint is left with exactly one revision and its pool,
which ``gpu_endpoint_delete`` then deletes whole. Without the lock, the later retirement could delete the revision the
front Service had just been switched to."""

from __future__ import annotations

from datetime import datetime

import pytest

from gpuflow.core import naming
from tests.live.conftest import Live
from tests.support.emulated_clouds import FAST_CONF

DAG_ID, DELETE_DAG = "gpu_train_and_serve", "gpu_endpoint_delete"
ENDPOINT = "race"
WAITED = f"endpoint {ENDPOINT} is being changed by run"
pytestmark = pytest.mark.timeout(900)


def test_two_runs_promoting_onto_one_endpoint_at_once_take_turns_and_leave_one_revision(live: Live) -> None:
    airflow = live.airflow
    for dag_id in (DAG_ID, DELETE_DAG):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    # The gate is not what this test is about: on the double's millisecond answers a TTFT ratio is noise.
    conf = {**FAST_CONF, "endpoint_name": ENDPOINT, "benchmark_requests": 0, "gate_ttft_p99_ratio": 100}
    run_ids = [airflow.trigger(DAG_ID, {**conf, "job_name": f"race{n}"}).json()["dag_run_id"] for n in (1, 2)]

    assert [airflow.follow(DAG_ID, run_id, within_s=600) for run_id in run_ids] == ["success", "success"]

    (first, first_log), (second, second_log) = [_promote(airflow, run_id) for run_id in run_ids]
    overlapped = max(_at(first["start_date"]), _at(second["start_date"])) < min(
        _at(first["end_date"]), _at(second["end_date"])
    )
    if overlapped:  # one of them took the lock, the other waited its turn, then gated against the first's model
        (waiter,) = [log for log in (first_log, second_log) if WAITED in log]
        assert f"endpoint {ENDPOINT}: the change before this one is done" in waiter
        assert "now serves revision" in waiter
        assert "(was " in waiter  # it replaced the revision the first had just put in service
    left = live.emulator.labelled(naming.ENDPOINT_LABEL, ENDPOINT)
    assert len([name for name in left if name.startswith("deployment/")]) == 1, left
    assert len([name for name in left if name.startswith("pool/")]) == 1, left

    deletion = airflow.trigger(DELETE_DAG, {"endpoint_name": ENDPOINT}).json()["dag_run_id"]
    assert airflow.follow(DELETE_DAG, deletion, within_s=600) == "success"
    assert live.emulator.labelled(naming.ENDPOINT_LABEL, ENDPOINT) == []


def _promote(airflow: object, run_id: str) -> tuple[dict[str, str], str]:
    from scripts.airflow_stack import AirflowStack

    assert isinstance(airflow, AirflowStack)
    ti = next(ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "promote")
    return ti, airflow.task_log(DAG_ID, run_id, "promote", int(ti["try_number"]))


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
