"""A spot preemption mid-training on running Airflow components, with the triggerer killed during the recovery:
the recovery's state is in the store and its wait in the metadata DB, so a new triggerer carries it on."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gpuflow.core import naming
from tests.live.conftest import Live
from tests.support.emulated_clouds import FAST_CONF, fake_resumable_training

DAG_ID = "gpu_train_and_serve"
pytestmark = pytest.mark.timeout(900)
RECOVERY_WAIT = "to replace its lost node"  # the train task's log line when it defers for the replacement


def wait_for(what: str, check: Any, within_s: float = 300) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {within_s:.0f}s")


def train_state(live: Live, run_id: str) -> dict[str, Any]:
    return next(ti for ti in live.airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "train")


def test_a_triggerer_killed_during_a_recovery_does_not_stop_it(live: Live) -> None:
    airflow, emulator = live.airflow, live.emulator
    airflow.wait_for_dag(DAG_ID)
    airflow.unpause(DAG_ID)
    conf = {**FAST_CONF, **fake_resumable_training(steps=120), "clouds": ["aws"], "capacity": "spot"}
    answer = airflow.trigger(DAG_ID, {**conf, "job_name": "spot", "benchmark_requests": 0})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    label = naming.run_key(DAG_ID, run_id)

    def training_pool() -> dict[str, Any] | None:
        if train_state(live, run_id).get("state") != "deferred":
            return None
        return next((p for p in emulator.pools() if p["labels"].get(naming.RUN_LABEL) == label and p["nodes"]), None)

    pool = wait_for("training on a spot pool", training_pool)
    time.sleep(3)  # a few steps done and checkpointed
    assert emulator.preempt("aws", pool["cluster"], pool["name"])

    def recovering() -> bool:
        ti = train_state(live, run_id)
        log = airflow.task_log(DAG_ID, run_id, "train", max(1, ti.get("try_number") or 1))
        return ti.get("state") == "deferred" and RECOVERY_WAIT in log

    wait_for("the recovery deferring for the replacement node", recovering, within_s=120)
    airflow.restart("triggerer")

    assert airflow.follow(DAG_ID, run_id, within_s=600) == "success"
    ti = train_state(live, run_id)
    assert ti["try_number"] == 1, "the recovery must not have cost a retry"
    log = airflow.task_log(DAG_ID, run_id, "train", 1)
    assert "recovery 1/3: training lost on aws/" in log
    assert "resumed on aws/" in log
    cost = airflow.xcom(DAG_ID, run_id, "cost_report")
    assert (cost["segments"], cost["recoveries"]) == (2, 1)
    assert emulator.labelled(naming.RUN_LABEL, label) == []
