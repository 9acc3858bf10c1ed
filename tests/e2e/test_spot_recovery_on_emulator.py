"""Training that survives spot preemption, end to end on the emulator, in Airflow (dag.test)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import EmulatorProcess, eventually
from sqlalchemy import select

from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.operators.endpoint import endpoint_name
from gpuflow.operators.runtime import JOB_NAMESPACE
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.load import SteadyLoad
from gpuflow.serving.vllm_args import PORT
from gpuflow.state.ledger import Ledger
from tests.e2e.test_pipeline_on_emulator import CONF, dag, run_objects, task_states
from tests.support.emulated_clouds import FAKE_STEPS, fake_resumable_training, gcs_object
from tests.support.offers import cluster_of

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


class PreemptMidBenchmark(threading.Thread):
    """Once the run's ``benchmark`` task runs: a steady load through the endpoint, the endpoint's AKS spot pool
    preempted, and the load kept on until the endpoint answers again (wherever the run recovered it to, in the same
    cluster); what failed and how long it took are left on the thread."""

    def __init__(self, emulator: EmulatorProcess, dag_id: str, job_name: str) -> None:
        super().__init__(name="preempt-mid-benchmark", daemon=True)
        self.emulator, self.dag_id, self.job_name = emulator, dag_id, job_name
        self.sent = self.failed = 0
        self.back_after_s: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._preempt_under_load()
        except BaseException as exc:  # reported by the test, on its own thread
            self.error = exc

    def _benchmarking_run(self) -> str | None:
        with create_session() as session:
            return session.scalar(
                select(TaskInstance.run_id).where(
                    TaskInstance.dag_id == self.dag_id,
                    TaskInstance.task_id == "benchmark",
                    TaskInstance.state == "running",
                )
            )

    def _preempt_under_load(self) -> None:
        run_id = eventually(self._benchmarking_run, timeout=180, interval=0.2, what="the benchmark to start")
        key = naming.run_key(self.dag_id, run_id)
        pool = next(p for p in self.emulator.pools() if p.get("labels", {}).get(naming.RUN_LABEL) == key)
        cluster = cluster_of("azure")
        proxy = service_proxy_endpoint(
            backend_for(cluster).kube_config(), JOB_NAMESPACE, endpoint_name({"job_name": self.job_name}, key), PORT
        )
        with OpenAIClient(proxy, timeout_s=10) as client, SteadyLoad(client, "tiny") as load:
            load.wait_for_successes(3)
            preempted_at = time.monotonic()
            self.emulator.preempt("azure", cluster.name, pool["name"])
            self.back_after_s = load.serving_again_after(preempted_at, within_s=150)
        self.sent, self.failed = load.sent, load.failed


def test_an_endpoint_preempted_mid_benchmark_serves_again_on_the_next_offer_and_the_run_succeeds(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    """AKS spot (eviction policy Delete): the preempted node is removed and nothing replaces it. The benchmark's
    requests fail; the run moves the endpoint to the plan's next offer in the same region, serves again there,
    benchmarks again, and the teardown leaves nothing."""
    conf = {
        **CONF,
        "clouds": ["azure"],
        "accelerator": "T4",
        "regions": ["eastus"],
        "capacity": "spot",
        "benchmark_requests": 24,
        "benchmark_rate": 3.0,
    }
    preemption = PreemptMidBenchmark(clouds_emulator, dag.dag_id, conf["job_name"])
    preemption.start()
    run = dag.test(run_conf=conf)
    preemption.join(timeout=60)
    assert preemption.error is None, preemption.error
    assert preemption.back_after_s is not None, "the endpoint did not serve again after its node was preempted"
    print(
        f"endpoint preempted mid-benchmark (AKS spot, time scale 10): {preemption.failed} of {preemption.sent} "
        f"requests failed, serving again after {preemption.back_after_s:.1f}s"
    )
    assert run.state == "success", task_states(run)
    assert preemption.failed > 0, "the preemption did not reach the endpoint"
    segments = Ledger().entries(run.dag_id, run.run_id)
    assert [entry.ended_by.split(":")[0] for entry in segments if entry.ended_by] == ["preempted", "teardown"]
    assert segments[0].pool != segments[1].pool, "the endpoint was not moved off the preempted pool"
    report = xcom(run, "cost_report")
    assert (report["segments"], report["recoveries"]) == (2, 1)
    assert xcom(run, "benchmark")["failed"] == 0, "the benchmark's figures must not measure the outage"
    assert run_objects(clouds_emulator, run) == []
