"""A pool is ready in Kubernetes, not in its cloud's API: every planned node Ready with its accelerators."""

from __future__ import annotations

from gpuflow.core.nodepool import NodeReport, Readiness, readiness


def test_ready_when_every_planned_node_is_ready_with_the_planned_accelerators() -> None:
    nodes = [NodeReport("a", True, 8), NodeReport("b", True, 8)]
    assert readiness(nodes, planned_nodes=2, per_node=8) is Readiness.READY


def test_joining_while_a_node_is_missing_or_not_ready() -> None:
    assert readiness([NodeReport("a", True, 1)], planned_nodes=2, per_node=1) is Readiness.JOINING
    assert readiness([NodeReport("a", False, 1)], planned_nodes=1, per_node=1) is Readiness.JOINING
    assert readiness([], planned_nodes=1, per_node=1) is Readiness.JOINING


def test_unadvertised_when_ready_nodes_offer_fewer_accelerators_than_planned() -> None:
    assert readiness([NodeReport("a", True, 0)], planned_nodes=1, per_node=1) is Readiness.UNADVERTISED
    assert readiness([NodeReport("a", True, 8), NodeReport("b", True, 4)], 2, 8) is Readiness.UNADVERTISED


def test_a_cordoned_node_does_not_count_as_ready() -> None:
    """After a spot notice the node is cordoned and about to go: a recovery waiting for the pool must not train
    there."""
    cordoned = NodeReport("a", True, 1, unschedulable=True)
    assert readiness([cordoned], planned_nodes=1, per_node=1) is Readiness.JOINING
