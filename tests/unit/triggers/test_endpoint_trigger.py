"""``EndpointTrigger`` watches the pool the endpoint serves on: a node lost while it waits ends the wait at once, with
``NodeLost``, so the task recovers the pool instead of waiting out the serve timeout on a paid pool."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from gpuflow.clouds import access
from gpuflow.core.handoffs import cluster_fields
from gpuflow.core.nodepool import NodeReport
from gpuflow.kube import cluster as kube
from gpuflow.triggers.endpoint import NODE_LOST, EndpointTrigger
from tests.support.offers import cluster_of
from tests.support.triggers import first_event


def trigger(**overrides: Any) -> EndpointTrigger:
    kwargs: dict[str, Any] = {
        "cluster": cluster_fields(cluster_of("azure")),
        "namespace": "default",
        "name": "e2e-1234abcd",
        "served_model_name": "tiny",
        "port": 8000,
        "timeout_s": 0.2,
        "poll_interval_s": 0.01,
        "pool": "gfpool1",
        "resource": "nvidia.com/gpu",
        "nodes": 1,
    }
    return EndpointTrigger(**{**kwargs, **overrides})


@pytest.fixture
def pool_nodes(monkeypatch: pytest.MonkeyPatch) -> list[NodeReport]:
    """A Deployment that is not available, on a pool whose nodes are this list (empty: AKS removed the node)."""
    nodes: list[NodeReport] = []
    monkeypatch.setattr(access, "kube_config", lambda cluster: {})
    monkeypatch.setattr(kube, "api_client", lambda config: object())
    monkeypatch.setattr(kube, "deployment_status", lambda *args: {"unavailableReplicas": 1})
    monkeypatch.setattr(kube, "pool_nodes", lambda *args: nodes)
    monkeypatch.setattr(kube, "crash_report", lambda *args: None)
    return nodes


def test_serialize_recreate_round_trips_the_kwargs() -> None:
    classpath, kwargs = trigger().serialize()
    module_name, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_a_node_lost_while_waiting_ends_the_wait_with_node_lost(pool_nodes: list[NodeReport]) -> None:
    event = first_event(trigger(timeout_s=60.0))
    assert (event["status"], event["cloud_code"], event["kind"]) == ("failed", NODE_LOST, "CAPACITY")
    assert "0 of its 1 node" in event["message"]


def test_a_healthy_pool_keeps_waiting_until_the_timeout(pool_nodes: list[NodeReport]) -> None:
    pool_nodes.append(NodeReport("aks-gfpool1-0", ready=True, allocatable=1))
    event = first_event(trigger())
    assert (event["status"], event["cloud_code"]) == ("failed", "EndpointNeverReady")
