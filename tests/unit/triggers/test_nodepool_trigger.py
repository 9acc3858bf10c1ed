"""``NodePoolTrigger`` decides ready in Kubernetes: a pool its cloud calls ready whose nodes never advertise their
accelerators fails over with that reason instead of counting as ready."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from gpuflow.core.errors import ErrorKind, Scope
from gpuflow.core.handoffs import cluster_fields
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, NodeReport, PoolState
from gpuflow.triggers import nodepool as module
from gpuflow.triggers.nodepool import UNADVERTISED, NodePoolTrigger
from tests.support.offers import cluster_of
from tests.support.triggers import first_event

REF = NodePoolRef("azure", "eastus", "gpuflow-eastus", "gfpool1")


class ReadyInTheCloud:
    """A backend whose API reports the pool ready at once."""

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        return NodePoolStatus(ref=ref, state=PoolState.READY, ready_nodes=1)


def trigger(**overrides: Any) -> NodePoolTrigger:
    kwargs: dict[str, Any] = {
        "cluster": cluster_fields(cluster_of("azure")),
        "ref": REF.to_dict(),
        "resource": "nvidia.com/gpu",
        "accelerators_per_node": 1,
        "nodes": 1,
        "timeout_s": 5.0,
        "poll_interval_s": 0.01,
        "advertise_timeout_s": 0.05,
    }
    return NodePoolTrigger(**{**kwargs, **overrides})


@pytest.fixture
def cloud_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "backend_for", lambda cluster: ReadyInTheCloud())


def nodes_are(monkeypatch: pytest.MonkeyPatch, *reports: NodeReport) -> list[int]:
    calls: list[int] = []

    def pool_nodes(cluster: Any, pool: str, resource: str) -> list[NodeReport]:
        calls.append(1)
        return list(reports)

    monkeypatch.setattr(module, "_pool_nodes", pool_nodes)
    return calls


def test_serialize_recreate_round_trips_the_kwargs() -> None:
    classpath, kwargs = trigger().serialize()
    module_name, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_ready_in_the_cloud_and_in_kubernetes_is_success(cloud_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes_are(monkeypatch, NodeReport("aks-gfpool1-0", True, 1))
    event = first_event(trigger())
    assert event["status"] == "success"
    assert event["ready_nodes"] == 1


def test_nodes_that_never_advertise_their_gpus_fail_over_naming_the_device_plugin(
    cloud_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = nodes_are(monkeypatch, NodeReport("aks-gfpool1-0", True, 0))
    event = first_event(trigger())
    assert len(calls) > 1  # it waited for the plugin before giving up
    assert (event["status"], event["kind"], event["scope"]) == ("failed", ErrorKind.CAPACITY.value, Scope.OFFER.value)
    assert event["cloud_code"] == UNADVERTISED
    assert "nodes of pool gfpool1 joined but never advertised nvidia.com/gpu" in event["message"]
    assert "is the device plugin running?" in event["message"]


def test_nodes_still_joining_at_the_deadline_are_never_ready_not_a_plugin_problem(
    cloud_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes_are(monkeypatch, NodeReport("aks-gfpool1-0", False, 0))
    event = first_event(trigger(timeout_s=0.05))
    assert event["cloud_code"] == module.NEVER_READY


def test_an_unreadable_kubernetes_api_is_polled_again(cloud_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Any] = [OSError("connection refused"), [NodeReport("aks-gfpool1-0", True, 1)]]

    def pool_nodes(cluster: Any, pool: str, resource: str) -> list[NodeReport]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    monkeypatch.setattr(module, "_pool_nodes", pool_nodes)
    assert first_event(trigger())["status"] == "success"
    assert answers == []
