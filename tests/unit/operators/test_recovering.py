"""What is left of a pod, as the node-loss decision reads it: the one reading for a training pod and a Job's pods."""

from __future__ import annotations

from kubernetes.client import V1Pod, V1PodCondition, V1PodStatus

from gpuflow.core.recovery import PodView
from gpuflow.operators.recovering import pod_view


def test_a_deleted_pod_reads_as_gone() -> None:
    assert pod_view(None) == PodView(gone=True)


def test_a_pod_ended_by_its_nodes_shutdown_gives_its_reason_and_disruption() -> None:
    disrupted = V1PodCondition(type="DisruptionTarget", status="True", reason="TerminationByKubelet")
    status = V1PodStatus(phase="Failed", reason="Terminated", message="node shutdown", conditions=[disrupted])
    assert pod_view(V1Pod(status=status)) == PodView(
        gone=False, reason="Terminated", message="node shutdown", disruption="TerminationByKubelet"
    )


def test_a_pod_that_failed_by_itself_gives_nothing_for_the_nodes() -> None:
    status = V1PodStatus(phase="Failed", conditions=[V1PodCondition(type="Ready", status="False")])
    assert pod_view(V1Pod(status=status)) == PodView(gone=False)
