"""The REST API as the README documents it: a token, a trigger with a conf, the run followed to its end."""

from __future__ import annotations

import time

import pytest
import requests

from gpuflow.core import naming
from include.examples import trigger_via_rest as example
from tests.live.conftest import Live
from tests.support.emulated_clouds import FAST_CONF

DAG_ID = "gpu_train_and_serve"
pytestmark = pytest.mark.timeout(900)


def test_the_readme_example_runs_the_pipeline_to_success_with_nothing_left(live: Live) -> None:
    airflow = live.airflow
    airflow.wait_for_dag(DAG_ID)
    airflow.unpause(DAG_ID)
    token = example.get_token(airflow.url, "admin", airflow.passwords["admin"])
    run_id = example.trigger(airflow.url, token, FAST_CONF)
    seen: list[tuple[str, str]] = []
    started = time.monotonic()

    def record(ti: dict[str, object]) -> None:
        seen.append((str(ti["task_id"]), str(ti["state"])))
        print(f"{time.monotonic() - started:6.1f}s {ti['task_id']} {ti['state']}")

    assert airflow.follow(DAG_ID, run_id, on_change=record) == "success", seen
    assert example.wait(airflow.url, token, run_id) == "success"
    assert ("teardown", "success") in seen
    assert airflow.xcom(DAG_ID, run_id, "smoke_test")["completion_text"]
    assert live.emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id)) == []


def test_a_conf_outside_the_form_is_a_400_naming_the_field(live: Live) -> None:
    live.airflow.wait_for_dag(DAG_ID)
    runs_before = live.airflow.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"]
    token = example.get_token(live.airflow.url, "admin", live.airflow.passwords["admin"])
    with pytest.raises(ValueError, match="param count: -1 is less than the minimum of 1"):
        example.trigger(live.airflow.url, token, {**FAST_CONF, "count": -1})
    assert live.airflow.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"] == runs_before


def test_a_read_only_user_cannot_trigger(live: Live) -> None:
    live.airflow.wait_for_dag(DAG_ID)
    answer = live.airflow.trigger(DAG_ID, FAST_CONF, user="viewer")
    assert answer.status_code == 403
    assert live.airflow.api("GET", f"/dags/{DAG_ID}", user="viewer").status_code == 200


def test_a_wrong_password_gets_no_token(live: Live) -> None:
    with pytest.raises(requests.HTTPError, match="401"):
        example.get_token(live.airflow.url, "admin", "nope")
