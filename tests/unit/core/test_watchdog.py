"""The endpoint watchdog's rule: which kept pools to scale back, on hand-built pool statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gpuflow.core import naming
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, PoolState
from gpuflow.core.watchdog import Repair, repairs

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
REF = NodePoolRef("azure", "eastus", "aks-east", "gfsrv1")


def kept(
    nodes_now: int,
    *,
    kept_with: int | None = 1,
    until: datetime = NOW + timedelta(minutes=30),
    state: PoolState = PoolState.READY,
) -> NodePoolStatus:
    labels = {naming.MANAGED_LABEL: "true", **naming.expiry_label(until)}
    if kept_with is not None:
        labels[naming.KEPT_NODES_LABEL] = str(kept_with)
    return NodePoolStatus(REF, state, labels=labels, node_count=nodes_now, spot=True)


def test_a_kept_pool_that_lost_its_node_is_scaled_back_to_its_kept_count() -> None:
    (repair,) = repairs([kept(0)], NOW)
    assert repair == Repair(REF, nodes_now=0, nodes_kept=1)
    assert "azure/aks-east/gfsrv1 holds 0 of its 1 node(s) (1 lost, which AKS does not replace)" in repair.describe()


def test_a_pool_shrunk_by_one_of_several_is_scaled_back() -> None:
    assert repairs([kept(2, kept_with=3)], NOW) == [Repair(REF, 2, 3)]


def test_whole_expired_unlabelled_or_busy_pools_are_left_alone() -> None:
    assert repairs([kept(1)], NOW) == []  # whole
    assert repairs([kept(0, until=NOW - timedelta(seconds=1))], NOW) == []  # the janitor's now
    assert repairs([kept(0, kept_with=None)], NOW) == []  # not a kept endpoint's pool
    assert repairs([kept(0, state=PoolState.CREATING)], NOW) == []  # a resize already under way
    assert repairs([kept(0, state=PoolState.DELETING)], NOW) == []
