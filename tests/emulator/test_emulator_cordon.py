"""A cordoned or shutting-down node, as the scheduler and the DaemonSet controller see it (pure functions)."""

from __future__ import annotations

from typing import Any

from gpuflow_emulator.daemonsets import eligible
from gpuflow_emulator.node_disruption import NOT_READY_TAINT
from gpuflow_emulator.scheduler import UNSCHEDULABLE_TAINT, place

TEMPLATE: dict[str, Any] = {"spec": {"containers": [{"name": "agent", "image": "python:3.11"}]}}


def node(name: str, *, cordoned: bool = False, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": list(taints or [])}
    if cordoned:
        spec = {"unschedulable": True, "taints": [*spec["taints"], UNSCHEDULABLE_TAINT]}
    return {"metadata": {"name": name, "labels": {}}, "spec": spec, "status": {}}


def test_the_scheduler_places_nothing_on_a_cordoned_node() -> None:
    pod: dict[str, Any] = {"spec": {"containers": []}}
    refused = place(pod, [node("a", cordoned=True)], {})
    assert refused.message == "0/1 nodes are available: 1 node(s) were unschedulable."
    assert place(pod, [node("a", cordoned=True), node("b")], {}).node == "b"


def test_a_pod_tolerating_the_unschedulable_taint_may_land_on_a_cordoned_node() -> None:
    tolerant: dict[str, Any] = {
        "spec": {"containers": [], "tolerations": [{"key": UNSCHEDULABLE_TAINT["key"], "operator": "Exists"}]}
    }
    assert place(tolerant, [node("a", cordoned=True)], {}).node == "a"


def test_a_daemonset_keeps_its_pod_on_a_cordoned_node_and_runs_one_there() -> None:
    assert eligible(TEMPLATE, node("a", cordoned=True))


def test_a_not_ready_node_gets_no_new_daemon_pod_but_keeps_the_one_it_has() -> None:
    not_ready = node("a", taints=[NOT_READY_TAINT])
    assert not eligible(TEMPLATE, not_ready)
    assert eligible(TEMPLATE, not_ready, ("NoExecute",))
