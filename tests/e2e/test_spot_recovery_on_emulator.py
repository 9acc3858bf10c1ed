"""Training that survives spot preemption, end to end on the emulator, in Airflow (dag.test)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.state.ledger import Ledger
from tests.e2e.test_pipeline_on_emulator import CONF, dag, run_objects, task_states
from tests.support.emulated_clouds import FAKE_STEPS, fake_resumable_training, gcs_object

__all__ = ["dag"]  # the fixture, shared with the pipeline tests

SPOT = {**CONF, **fake_resumable_training(), "benchmark_requests": 0}


def xcom(run: Any, task_id: str) -> Any:
    return next(ti for ti in run.get_task_instances() if ti.task_id == task_id).xcom_pull(task_ids=task_id)


@pytest.mark.parametrize("clouds_emulator", ["spot-preempted-once"], indirect=True)
def test_a_preemption_mid_training_resumes_from_the_checkpoint_and_succeeds(
    dag: Any, clouds_emulator: EmulatorProcess, object_stores: StoresConfig
) -> None:
    run = dag.test(run_conf={**SPOT, "clouds": ["gcp"], "capacity": "spot"})
    assert run.state == "success", task_states(run)
    model = json.loads(gcs_object(object_stores, xcom(run, "deploy_endpoint")["model"] + "/config.json"))
    first, resumed_at = model["starts"]
    assert first == 0
    assert 0 < resumed_at < FAKE_STEPS, "the restart began from 0, not from the checkpoint"
    assert model["step"] == FAKE_STEPS
    segments = Ledger().entries(run.dag_id, run.run_id)
    assert [entry.ended_by.split(":")[0] for entry in segments if entry.ended_by] == ["preempted", "teardown"]
    report = xcom(run, "cost_report")
    assert (report["segments"], report["recoveries"]) == (2, 1)
    assert report["gpu_hours"] == pytest.approx(sum(entry.gpu_hours for entry in segments))
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["spot-preempted-once"], indirect=True)
def test_when_every_spot_offer_is_preempted_training_ends_on_demand(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    """AKS spot does not replace a preempted node: each recovery moves on, down to the plan's on-demand offers.
    The training outlasts the three spot pools of eastus (each preempted 10 s after it is ready)."""
    conf = {
        **SPOT,
        **fake_resumable_training(steps=160),
        "clouds": ["azure"],
        "accelerator": "T4",
        "regions": ["eastus"],
        "capacity": "spot-then-on-demand",
    }
    run = dag.test(run_conf=conf)
    assert run.state == "success", task_states(run)
    finished_on = xcom(run, "train")["choice"]
    assert finished_on["capacity_type"] == "on-demand"
    report = xcom(run, "cost_report")
    assert report["recoveries"] == 3  # the three spot sizes of eastus, each preempted once
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["spot-preempted-once"], indirect=True)
def test_a_run_out_of_recoveries_fails_cleanly_and_leaves_nothing(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    run = dag.test(run_conf={**SPOT, "clouds": ["gcp"], "capacity": "spot", "max_recoveries": 0})
    states = task_states(run)
    assert run.state == "failed", states
    train = next(ti for ti in run.get_task_instances() if ti.task_id == "train")
    assert (train.state, train.try_number) == ("failed", 1), "a run out of recoveries must not retry"
    assert (states["teardown"], states["cost_report"]) == ("success", "success")
    ended = [entry.ended_by.split(":")[0] for entry in Ledger().entries(run.dag_id, run.run_id) if entry.ended_by]
    assert ended == ["preempted", "teardown"]
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["spot-preempted-once"], indirect=True)
def test_a_deadline_too_tight_for_spot_starts_on_demand(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    conf = {**SPOT, "clouds": ["gcp"], "capacity": "spot-then-on-demand", "estimated_hours": 1, "deadline_hours": 1.05}
    run = dag.test(run_conf=conf)
    assert run.state == "success", task_states(run)
    plan = xcom(run, "plan")["plan"]
    assert plan["chosen"]["capacity_type"] == "on-demand"
    assert all(option["capacity_type"] == "on-demand" for option in plan["fallbacks"])
    assert xcom(run, "cost_report")["recoveries"] == 0
    assert run_objects(clouds_emulator, run) == []
