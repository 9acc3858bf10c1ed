"""A person's intent on running Airflow components: a run marked failed through the REST API mid-training ends
``failed`` once its cleanup ran, with nothing left on the clouds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gpuflow.core import naming
from tests.live.conftest import Live
from tests.support.emulated_clouds import FAST_CONF, fake_resumable_training

DAG_ID = "gpu_train_and_serve"
pytestmark = pytest.mark.timeout(900)


def states(live: Live, run_id: str) -> dict[str, Any]:
    return {ti["task_id"]: ti for ti in live.airflow.task_instances(DAG_ID, run_id)}


def training_run(live: Live, job_name: str) -> str:
    """A run of a long training, once its training pod runs (``train`` deferred); its run id."""
    airflow = live.airflow
    airflow.wait_for_dag(DAG_ID)
    airflow.unpause(DAG_ID)
    conf = {**FAST_CONF, **fake_resumable_training(steps=600), "job_name": job_name, "benchmark_requests": 0}
    answer = airflow.trigger(DAG_ID, conf)
    assert answer.status_code == 200, answer.text
    run_id: str = answer.json()["dag_run_id"]
    deadline = time.monotonic() + 300
    while (train := states(live, run_id).get("train", {}).get("state")) != "deferred":
        seen = {task: (ti["state"], ti["try_number"]) for task, ti in states(live, run_id).items()}
        assert train not in {"failed", "upstream_failed", "success"}, f"train ended before it ran: {seen}"
        assert time.monotonic() < deadline, f"train never deferred: {seen}"
        time.sleep(1)
    return run_id


def test_a_run_marked_failed_mid_training_ends_failed_after_its_cleanup(live: Live) -> None:
    airflow = live.airflow
    run_id = training_run(live, "stopped")
    airflow.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})

    assert airflow.follow(DAG_ID, run_id, within_s=600) == "failed"
    ended = {task: ti["state"] for task, ti in states(live, run_id).items()}
    assert (ended["train"], ended["deploy_endpoint"], ended["teardown"]) == ("failed", "skipped", "success"), ended
    assert ended["watcher"] == "failed", ended
    watcher_log = airflow.task_log(DAG_ID, run_id, "watcher", states(live, run_id)["watcher"]["try_number"])
    assert "the run was stopped: train ended failed" in watcher_log
    assert live.emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id)) == []


def test_a_task_marked_failed_mid_training_fails_the_run_after_its_cleanup(live: Live) -> None:
    airflow = live.airflow
    run_id = training_run(live, "stopped-task")
    airflow.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train", json={"new_state": "failed"})

    assert airflow.follow(DAG_ID, run_id, within_s=600) == "failed"
    ended = {task: ti["state"] for task, ti in states(live, run_id).items()}
    assert (ended["train"], ended["teardown"], ended["watcher"]) == ("failed", "success", "failed"), ended
    assert ended["deploy_endpoint"] in {"upstream_failed", "skipped"}, ended
    watcher_log = airflow.task_log(DAG_ID, run_id, "watcher", states(live, run_id)["watcher"]["try_number"])
    assert "train" in watcher_log
    assert "the run fails" in watcher_log
    assert live.emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id)) == []
