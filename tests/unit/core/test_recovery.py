"""Telling a node loss from a training failure, what a loss cost, and the state a recovering run keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpuflow.core.nodepool import NodeReport
from gpuflow.core.recovery import (
    NextStep,
    Phase,
    PodView,
    RanOn,
    Recovery,
    TrainingState,
    next_step,
    node_loss,
    recovery_line,
    steps_lost,
    where,
)

T0 = datetime(2026, 12, 2, 12, tzinfo=UTC)
HEALTHY = [NodeReport("n1", ready=True, allocatable=1)]


def _pool(cloud: str = "aws", capacity: str = "spot", nodes: int = 1, count: int = 1) -> dict[str, object]:
    choice = {
        "cloud": cloud,
        "region": "us-east-1",
        "availability_zone": "use1-az1",
        "instance_type": "g6.xlarge",
        "capacity_type": capacity,
        "nodes": nodes,
        "accelerator_count": count,
    }
    return {"choice": choice, "pool": {"name": "p"}}


@pytest.mark.parametrize(
    ("pod", "nodes", "expected"),
    [
        # GKE's graceful node shutdown: the pod itself says so.
        (
            PodView(
                gone=False, reason="Terminated", message="Pod was terminated in response to imminent node shutdown."
            ),
            HEALTHY,
            "reason Terminated",
        ),
        (PodView(gone=False, disruption="TerminationByKubelet"), HEALTHY, "disrupted (TerminationByKubelet"),
        # EKS/AKS drain on a spot notice: the pod was evicted (gone), its node cordoned.
        (PodView(gone=True), [NodeReport("n1", ready=True, allocatable=1, unschedulable=True)], "n1 was cordoned"),
        (PodView(gone=True), [NodeReport("n1", ready=False, allocatable=1)], "n1 is not Ready"),
        (PodView(gone=True), [], "0 of its 1 node"),
    ],
)
def test_a_node_loss_is_recognised_from_the_pod_or_the_pool(
    pod: PodView, nodes: list[NodeReport], expected: str
) -> None:
    why = node_loss(pod, nodes, expected_nodes=1)
    assert why is not None
    assert expected in why


@pytest.mark.parametrize(
    "pod",
    [
        PodView(gone=False, reason=None, message=None),  # the training exited non-zero: its own failure
        PodView(gone=False, reason="Error"),
        PodView(gone=True),  # deleted by a person while every node is healthy
    ],
)
def test_a_training_failure_on_healthy_nodes_is_not_a_node_loss(pod: PodView) -> None:
    assert node_loss(pod, HEALTHY, expected_nodes=1) is None


def test_steps_lost_counts_whole_steps_since_the_last_checkpoint() -> None:
    assert steps_lost(lost_at=T0 + timedelta(seconds=25), checkpoint_at=T0, step_seconds=10.0) == 2
    assert steps_lost(lost_at=T0, checkpoint_at=T0 + timedelta(seconds=1), step_seconds=10.0) == 0
    assert steps_lost(lost_at=T0, checkpoint_at=None, step_seconds=10.0) is None


def test_state_round_trips_through_json_with_its_recoveries() -> None:
    recovery = Recovery(1, T0.isoformat(), "aws/us-east-1/use1-az1 g6.xlarge (spot)", "preempted", steps_lost=0)
    state = TrainingState(pool=_pool(), segment_started_at=T0.isoformat()).lost(recovery, Phase.REPLACING, _pool(), T0)
    assert TrainingState.from_json(state.to_json()) == state
    assert state.phase is Phase.REPLACING


def test_a_loss_starts_a_new_segment_and_resuming_prices_the_wait() -> None:
    start = TrainingState(pool=_pool(), segment_started_at=(T0 - timedelta(hours=1)).isoformat())
    lost_at = T0
    recovery = Recovery(1, lost_at.isoformat(), where(start.pool), "node gone", steps_lost=3, step_seconds=20.0)
    moved = start.lost(recovery, Phase.PROVISIONING, _pool(cloud="gcp", capacity="on-demand", count=2), lost_at)
    assert moved.segment_started_at == lost_at.isoformat()
    resumed = moved.resumed(lost_at + timedelta(minutes=6), accelerators=2)
    last = resumed.recoveries[-1]
    assert resumed.phase is Phase.TRAINING
    assert last.resumed_on == "gcp/us-east-1/use1-az1 g6.xlarge (on-demand)"
    assert last.gpu_hours_lost == pytest.approx(2 * 7 / 60)  # two GPUs: six minutes idle, one minute redone
    line = recovery_line(last, limit=3)
    assert line.startswith("recovery 1/3: training lost on aws/us-east-1/use1-az1 g6.xlarge (spot): node gone")
    assert "resumed on gcp" in line
    assert "after 360s" in line
    assert "0.2333 GPU-hours lost" in line


def test_an_endpoint_loss_is_resumed_only_once_it_serves_again_and_its_line_says_serving() -> None:
    """The pool comes back before the endpoint serves on it: a new try in between must redeploy and wait, so the
    state says the recovery is not over until the endpoint serves."""
    start = TrainingState(pool=_pool(), segment_started_at=T0.isoformat(), phase=Phase.SERVING)
    recovery = Recovery(2, T0.isoformat(), where(start.pool), "node gone", steps_lost=None, during=Phase.SERVING)
    lost = start.lost(recovery, Phase.PROVISIONING, _pool(cloud="azure"), T0)
    assert not lost.resuming  # no pool yet: wait for it first
    back = lost.back_on_pool(Phase.SERVING)
    assert back.resuming
    serving = back.resumed(T0 + timedelta(seconds=90), accelerators=1, phase=Phase.SERVING)
    assert (serving.phase, serving.resuming) == (Phase.SERVING, False)
    assert TrainingState.from_json(serving.to_json()) == serving
    line = recovery_line(serving.recoveries[-1], limit=3)
    assert line.startswith("recovery 2/3: serving lost on aws/us-east-1/use1-az1 g6.xlarge (spot): node gone; serving")
    assert "steps lost" not in line
    assert "serving again on azure/us-east-1/use1-az1 g6.xlarge (spot) after 90s" in line


def test_a_state_saved_before_serving_recoveries_reads_its_recoveries_as_training() -> None:
    old = '{"pool": {}, "segment_started_at": "x", "phase": "training", "recoveries": [{"number": 1, '
    old += '"lost_at": "x", "where": "w", "why": "y", "steps_lost": 1}]}'
    assert TrainingState.from_json(old).recoveries[0].during == Phase.TRAINING


def test_each_loss_keeps_its_own_deadline_decision_not_a_latch() -> None:
    """On-demand after a loss before the first checkpoint (the interval unknown); a later loss of that node, with the
    trainer's file giving a short interval, may go back to spot: each loss decides on what is known then."""
    state = TrainingState(pool=_pool(), segment_started_at=T0.isoformat())
    first = Recovery(1, T0.isoformat(), where(state.pool), "preempted", steps_lost=None)
    state = state.lost(first, Phase.PROVISIONING, _pool(capacity="on-demand"), T0, on_demand_only=True)
    assert state.on_demand_only
    later = T0 + timedelta(hours=2)
    second = Recovery(2, later.isoformat(), where(state.pool), "node gone", steps_lost=3)
    assert not state.lost(second, Phase.PROVISIONING, _pool(), later, on_demand_only=False).on_demand_only


def test_resuming_without_a_recovery_only_marks_training() -> None:
    state = TrainingState(pool=_pool(), segment_started_at=T0.isoformat(), phase=Phase.PROVISIONING)
    assert state.resumed(T0, accelerators=1) == TrainingState(pool=_pool(), segment_started_at=T0.isoformat())


PLAN = [
    {"capacity_type": "spot"},
    {"capacity_type": "spot"},
    {"capacity_type": "on-demand"},
    {"capacity_type": "on-demand"},
]


def test_a_cloud_that_replaces_nodes_gets_the_wait_and_then_every_option_in_plan_order() -> None:
    step = next_step(PLAN, PLAN[0], cloud_replaces_nodes=True, on_demand_only=False)
    assert step == NextStep(wait_for_replacement=True, candidates=(0, 1, 2, 3))


def test_a_cloud_that_does_not_replace_moves_on_at_once() -> None:
    assert not next_step(PLAN, PLAN[0], cloud_replaces_nodes=False, on_demand_only=False).wait_for_replacement


def test_a_deadline_wanting_on_demand_skips_the_spot_wait_and_the_spot_options() -> None:
    step = next_step(PLAN, PLAN[0], cloud_replaces_nodes=True, on_demand_only=True)
    assert step == NextStep(wait_for_replacement=False, candidates=(2, 3))
    # A lost on-demand node may still come back: waiting is not spot.
    assert next_step(PLAN, PLAN[2], cloud_replaces_nodes=True, on_demand_only=True).wait_for_replacement


def test_a_spot_only_plan_keeps_its_options_and_warns_that_the_deadline_may_be_missed() -> None:
    step = next_step(PLAN[:2], PLAN[0], cloud_replaces_nodes=False, on_demand_only=True)
    assert step.candidates == (0, 1)
    assert step.warning is not None
    assert "capacity=spot" in step.warning


def test_a_late_look_finds_the_node_that_ran_the_pod_gone_or_recreated() -> None:
    """The worker resumed after the cloud had already replaced the node: the pool looks whole again, but the pod's
    own node tells the story."""
    gone = RanOn("n1", placed_at=T0, now=None, created_at=None)
    recreated = RanOn("n1", placed_at=T0, now=HEALTHY[0], created_at=T0 + timedelta(minutes=2))
    same = RanOn("n1", placed_at=T0, now=HEALTHY[0], created_at=T0 - timedelta(hours=1))
    assert "is gone" in (node_loss(PodView(gone=True), HEALTHY, 1, gone) or "")
    assert "recreated" in (node_loss(PodView(gone=True), HEALTHY, 1, recreated) or "")
    assert node_loss(PodView(gone=True), HEALTHY, 1, same) is None
