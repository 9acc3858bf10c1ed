"""An asset event posted through the REST API starts gpu_scheduled_retraining, which runs to success."""

from __future__ import annotations

import time

import pytest

from gpuflow.core import naming
from gpuflow.core.retraining import training_data_uri
from tests.live.conftest import Live

DAG_ID = "gpu_scheduled_retraining"
pytestmark = pytest.mark.timeout(900)


def wait_for_run(live: Live, within_s: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        runs = live.airflow.call("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
        if runs:
            return dict(runs[0])
        time.sleep(2)
    raise AssertionError(f"no run of {DAG_ID} within {within_s:.0f}s of the asset event")


def test_an_asset_event_through_the_rest_api_starts_a_retraining_run_that_succeeds(live: Live) -> None:
    airflow = live.airflow
    airflow.wait_for_dag(DAG_ID)
    airflow.unpause(DAG_ID)
    uri = training_data_uri(airflow.env["GPUFLOW_RETRAINING_CONFIG"])
    assets = airflow.call("GET", "/assets", params={"uri_pattern": uri})["assets"]
    asset = next(a for a in assets if a["uri"] == uri)
    airflow.call("POST", "/assets/events", json={"asset_id": asset["id"], "extra": {"source": "test"}})

    run = wait_for_run(live)
    assert run["run_type"] == "asset_triggered", run
    state = airflow.follow(DAG_ID, str(run["dag_run_id"]))
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, str(run["dag_run_id"]))}
    assert state == "success", states
    assert airflow.xcom(DAG_ID, str(run["dag_run_id"]), "smoke_test")["completion_text"]
    assert live.emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, str(run["dag_run_id"]))) == []
    runs = airflow.call("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert [r["run_type"] for r in runs] == ["asset_triggered"]  # the one event, one run
