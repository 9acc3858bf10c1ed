"""KubernetesPodOperator, sync and deferrable, run unchanged against the emulator.

The operator is driven directly: `execute(context)`; when it defers, the trigger's `run()` is consumed
to its first event and the method named in the deferral is called with it, as the triggerer would.
The task log is what the operator writes to stdout/stderr through Airflow's logging.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from gpuflow_emulator.testing import EmulatorProcess
from kubernetes.client import CoreV1Api

pytestmark = pytest.mark.timeout(90)

UNSCHEDULABLE = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."


@dataclass
class FakeTaskInstance:
    """The task-instance attributes the operator reads (labels, deadlines) and its XCom pushes."""

    dag_id: str = "emulator_test"
    task_id: str = "train"
    try_number: int = 1
    map_index: int = -1
    start_date: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _context() -> Any:  # the few Context keys the operator reads
    return {"ti": FakeTaskInstance(), "run_id": "manual__2026-01-01", "dag": None}


def _operator(emulator: EmulatorProcess, code: str, *, deferrable: bool, **kwargs: Any) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id="train",
        name="train",
        namespace="default",
        image="python:3.11",
        cmds=["python", "-c", code],
        config_file=str(emulator.kubeconfig()),
        in_cluster=False,
        get_logs=True,
        deferrable=deferrable,
        poll_interval=1,
        startup_check_interval_seconds=1,
        **kwargs,
    )


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def _run(operator: KubernetesPodOperator) -> Any:
    """execute(); for a deferral, run the trigger to its event and resume like the triggerer would."""
    context = _context()
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        event = asyncio.run(_first_event(deferred.trigger))
        return getattr(operator, deferred.method_name)(context, event.payload)


def _pods(core_v1: CoreV1Api) -> list[str]:
    return [p.metadata.name for p in core_v1.list_namespaced_pod("default").items]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_pod_that_succeeds_completes_the_task_with_its_logs_in_the_task_log(
    emulator: EmulatorProcess, core_v1: CoreV1Api, capfd: pytest.CaptureFixture[str], deferrable: bool
) -> None:
    operator = _operator(emulator, "print('training done: loss=0.1')", deferrable=deferrable)

    _run(operator)

    assert "training done: loss=0.1" in capfd.readouterr().out + capfd.readouterr().err
    assert _pods(core_v1) == []  # on_finish_action defaults to delete_pod


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_pod_that_exits_non_zero_fails_the_task_and_is_deleted(
    emulator: EmulatorProcess, core_v1: CoreV1Api, deferrable: bool
) -> None:
    operator = _operator(emulator, "import sys; print('oom'); sys.exit(3)", deferrable=deferrable)

    with pytest.raises(AirflowException, match=r"returned a failure|pod failed"):
        _run(operator)

    assert _pods(core_v1) == []


def test_pod_that_exits_non_zero_is_kept_when_on_finish_action_keeps_it(
    emulator: EmulatorProcess, core_v1: CoreV1Api
) -> None:
    operator = _operator(emulator, "import sys; sys.exit(3)", deferrable=False, on_finish_action="keep_pod")

    with pytest.raises(AirflowException):
        _run(operator)

    (pod,) = core_v1.list_namespaced_pod("default").items
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert pod.status.container_statuses[0].state.terminated.reason == "Error"
    assert pod.metadata.labels["already_checked"] == "True"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_pod_that_cannot_be_scheduled_fails_after_the_schedule_timeout_with_the_reason(
    emulator: EmulatorProcess, capfd: pytest.CaptureFixture[str], deferrable: bool
) -> None:
    operator = _operator(
        emulator,
        "print('never runs')",
        deferrable=deferrable,
        schedule_timeout_seconds=3,
        container_resources={"limits": {"nvidia.com/gpu": "1"}},
    )

    with pytest.raises(AirflowException) as failure:
        _run(operator)

    # Sync mode raises the timeout and then cleanup's "returned a failure", chained; deferrable the timeout.
    errors = [str(failure.value), str(failure.value.__context__)]
    assert any("too long to be scheduled" in error for error in errors)
    captured = capfd.readouterr()
    assert f"The Pod has an Event: {UNSCHEDULABLE}" in captured.out + captured.err
