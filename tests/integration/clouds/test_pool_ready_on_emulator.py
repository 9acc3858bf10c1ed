"""``wait_node_pool`` on each cloud of the emulator: ready means the pool's nodes are Ready in Kubernetes with the
planned accelerators allocatable, not that the cloud's API says ACTIVE (EKS AL2023 and AKS nodes advertise no GPU
until a device plugin runs on them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import BaseTrigger
from gpuflow_emulator.testing import EmulatorProcess
from kubernetes import client as k8s

from gpuflow.clouds.base import backend_for
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.kube.cluster import api_client
from gpuflow.operators.nodepool import WaitNodePoolOperator
from tests.support.offers import one_gpu_choice, one_gpu_pool_spec

pytestmark = pytest.mark.timeout(120)


class TaskInstance:
    """The XCom half of a task instance: what ``WaitNodePoolOperator.execute`` reads and writes."""

    def __init__(self, pulled: dict[str, Any]) -> None:
        self.pulled = pulled
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pulled[task_ids]

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


@pytest.mark.parametrize("cloud", CLOUDS)
def test_wait_reports_ready_only_once_the_planned_accelerators_are_allocatable(
    cloud: str, clouds_emulator: EmulatorProcess
) -> None:
    spec = one_gpu_pool_spec(cloud, dag_id="ready_test", run_id="manual__1")
    backend = backend_for(spec.cluster)
    backend.create_node_pool(spec)
    handoff = PoolHandoff.of(spec, 0, one_gpu_choice(cloud), [], datetime.now(UTC).isoformat())
    operator = WaitNodePoolOperator(task_id="wait_node_pool", ready_timeout_s=60, poll_interval_s=0.5)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": TaskInstance({"create_node_pool": handoff.to_xcom()})})  # type: ignore[typeddict-item]

    event = asyncio.run(first_event(deferred.value.trigger))

    assert event["status"] == "success", event
    label = traits(cloud).pool_label
    nodes = k8s.CoreV1Api(api_client(backend.kube_config())).list_node(label_selector=f"{label}={spec.name}").items
    assert len(nodes) == spec.nodes
    for node in nodes:
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
        advertised = int(node.status.allocatable.get(spec.resource_name, "0"))
        assert advertised >= spec.accelerator_count, f"{node.metadata.name} advertises {node.status.allocatable}"
    backend.delete_node_pool(spec.ref)
