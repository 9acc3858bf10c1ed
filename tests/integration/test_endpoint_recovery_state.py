"""A new try of an endpoint task (a worker lost, a triggerer restarted) carries on the endpoint's recovery from the
run's state in the state store: it waits for a pool still coming back, or applies the endpoint on a pool that is
back and waits until it serves, and only then counts the recovery as over."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from airflow.sdk import Context
from airflow.sdk.exceptions import TaskDeferred

from gpuflow.core import naming
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.core.recovery import Phase, Recovery, TrainingState, where
from gpuflow.operators import recovering
from gpuflow.operators.endpoint import WaitEndpointOperator
from gpuflow.state.training import TrainingStates
from gpuflow.triggers.endpoint import EndpointTrigger
from tests.support.offers import one_gpu_choice, one_gpu_pool_spec

DAG_ID, RUN_ID = "gpu_train_and_serve", "manual__1"
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


class TaskInstance:
    def __init__(self, pulled: dict[str, Any]) -> None:
        self.pulled = pulled

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pulled[task_ids]


def pool(name_run: str) -> dict[str, Any]:
    spec = one_gpu_pool_spec("azure", dag_id=DAG_ID, run_id=name_run)
    return PoolHandoff.of(spec, 0, one_gpu_choice("azure"), [], NOW.isoformat()).to_xcom()


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """The parts of a task's context the endpoint tasks read, with the run's state in a fresh store."""
    monkeypatch.setenv("GPUFLOW_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    plan = {"plan": {"chosen": one_gpu_choice("azure"), "fallbacks": []}}
    job = {"job_name": "e2e", "served_model_name": "tiny", "max_recoveries": 3}
    ti = TaskInstance({"plan": {**plan, "job": job}, "train": pool(RUN_ID)})
    return cast(Context, {"ti": ti, "dag": SimpleNamespace(dag_id=DAG_ID), "run_id": RUN_ID})


def saved(state: TrainingState) -> None:
    TrainingStates().save(naming.run_key(DAG_ID, RUN_ID), state, now=NOW)


def lost_endpoint(phase: Phase) -> TrainingState:
    first = TrainingState(pool=pool(RUN_ID), segment_started_at=NOW.isoformat(), phase=Phase.SERVING)
    recovery = Recovery(1, NOW.isoformat(), where(first.pool), "node gone", None, during=Phase.SERVING)
    return first.lost(recovery, phase, pool("replacement"), NOW)


def test_a_new_try_during_the_pool_wait_waits_for_that_pool(context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    saved(lost_endpoint(Phase.PROVISIONING))
    waited: list[str] = []
    monkeypatch.setattr(
        recovering, "pool_trigger", lambda operator, state, timeout_s, poll: waited.append(state.pool.name)
    )
    with pytest.raises(TaskDeferred) as deferred:
        WaitEndpointOperator(task_id="wait_endpoint").execute(context)
    assert deferred.value.method_name == "pool_event"
    assert waited == [PoolHandoff.from_xcom(pool("replacement")).pool.name]


def test_a_new_try_with_the_pool_back_redeploys_there_and_the_recovery_ends_when_it_serves(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(lost_endpoint(Phase.PROVISIONING).back_on_pool(Phase.SERVING))
    deployed: list[str] = []
    monkeypatch.setattr(WaitEndpointOperator, "deploy", lambda self, ctx, on: deployed.append(on.pool.name))
    task = WaitEndpointOperator(task_id="wait_endpoint")
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    replacement = PoolHandoff.from_xcom(pool("replacement")).pool.name
    assert deployed == [replacement]
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointTrigger)
    assert (deferred.value.method_name, trigger.pool) == ("endpoint_event", replacement)

    ref = {"cluster": "gpuflow-eastus", "namespace": "default", "name": "e2e-x"}
    assert task.endpoint_event(context, {"status": "success", "ref": ref}) == ref
    state = TrainingStates().load(naming.run_key(DAG_ID, RUN_ID))
    assert state is not None
    assert (state.phase, state.resuming) == (Phase.SERVING, False)
    assert state.recoveries[-1].resumed_on == where(pool("replacement"))
