"""Taking a node out of service as Kubernetes does: cordon, drain, the kubelet's graceful node shutdown, and what
the node lifecycle controller shows of a node whose machine is gone.

The clouds' spot interruptions (`clouds/preemption.py`) drive these: EKS managed node groups and AKS node auto-drain
cordon and drain a node on the notice; on GKE the kubelet's graceful node shutdown stops the pods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from gpuflow_emulator.conditions import set_condition
from gpuflow_emulator.events import EventRecorder
from gpuflow_emulator.kubelet import TERMINAL_PHASES, Kubelet
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.scheduler import UNSCHEDULABLE_TAINT
from gpuflow_emulator.store import Obj, Store

NODES, PODS = by_kind("Node"), by_kind("Pod")
# kubernetes/kubernetes pkg/kubelet/nodeshutdown/nodeshutdown_manager_linux.go: what a pod stopped by a node
# shutdown says (its status reason and message, and its DisruptionTarget condition's message).
SHUTDOWN_REASON = "Terminated"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
# The node lifecycle controller's taints for a Ready condition that is False or Unknown (TaintNodesByCondition):
# the scheduler keeps new pods off such a node through them, not through the condition.
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
UNREACHABLE_TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}


class NodeDisruption:
    """Cordon, drain and shut down the nodes of one cluster."""

    def __init__(
        self, store: Store, events: EventRecorder, kubelet: Kubelet, delete_pod: Callable[[str, str, int], Obj]
    ) -> None:
        self._store, self._events, self._kubelet, self._delete_pod = store, events, kubelet, delete_pod

    def cordon(self, node: str, taints: Iterable[dict[str, str]] = ()) -> None:
        """`kubectl cordon`: spec.unschedulable and its taint, plus a cloud's own `taints`; the kubelet then reports
        the node NodeNotSchedulable."""

        def mark(obj: Obj) -> None:
            obj["spec"]["unschedulable"] = True
            _add_taints(obj, [UNSCHEDULABLE_TAINT, *taints])

        updated = self._store.mutate(NODES, "", node, mark)
        if updated is not None:
            message = f"Node {node} status is now: NodeNotSchedulable"
            self._events.record(updated, "Normal", "NodeNotSchedulable", message, "kubelet", node)

    def drain(self, node: str, within: float) -> list[str]:
        """Evict every pod of the node but DaemonSet pods (`kubectl drain --ignore-daemonsets`): a graceful deletion
        with the pod's own grace period cut to `within` seconds (rounded up: deletions take whole seconds)."""
        evicted = []
        for pod in self._store.list(PODS, None, lambda p: _evictable(p, node)):
            meta = pod["metadata"]
            grace = min(int(pod["spec"].get("terminationGracePeriodSeconds", 30)), math.ceil(within))
            self._delete_pod(meta["namespace"], meta["name"], grace)
            evicted.append(f"{meta['namespace']}/{meta['name']}")
        return evicted

    async def shut_down(self, node: str, windows: tuple[float, float]) -> None:
        """The kubelet's graceful node shutdown: a NodeShutdown event, the node NotReady ("node is shutting down"),
        then ordinary and critical pods stopped within their `windows` (seconds) and left Failed."""
        found = self._store.find(NODES, "", node)
        if found is None:
            return
        detected = "Shutdown manager detected shutdown event"
        self._events.record(found, "Normal", "NodeShutdown", detected, "kubelet", node)
        self._set_ready(node, False, "KubeletNotReady", "node is shutting down", NOT_READY_TAINT)
        await self._kubelet.shut_down_node(node, windows, SHUTDOWN_REASON, SHUTDOWN_MESSAGE)

    def unreachable(self, node: str) -> None:
        """The node's machine is gone but its Node stays: Ready Unknown, as the node lifecycle controller marks a node
        whose kubelet stopped posting status, and tainted unreachable."""
        self._set_ready(node, None, "NodeStatusUnknown", "Kubelet stopped posting node status.", UNREACHABLE_TAINT)

    def _set_ready(self, node: str, ready: bool | None, reason: str, message: str, taint: dict[str, str]) -> None:
        """Set the Ready condition and swap the lifecycle taint that goes with it."""

        def mark(obj: Obj) -> None:
            set_condition(obj["status"], "Ready", ready, reason, message)
            condition_taints = (NOT_READY_TAINT["key"], UNREACHABLE_TAINT["key"])
            obj["spec"]["taints"] = [t for t in obj["spec"].get("taints") or [] if t["key"] not in condition_taints]
            _add_taints(obj, [taint])

        self._store.mutate(NODES, "", node, mark)


def _evictable(pod: Obj, node: str) -> bool:
    daemon = any(ref.get("kind") == "DaemonSet" for ref in pod["metadata"].get("ownerReferences") or [])
    live = pod["status"].get("phase") not in TERMINAL_PHASES and "deletionTimestamp" not in pod["metadata"]
    return pod["spec"].get("nodeName") == node and live and not daemon


def _add_taints(node: Obj, taints: Iterable[dict[str, str]]) -> None:
    current = node["spec"].setdefault("taints", [])
    present = {(t["key"], t["effect"]) for t in current}
    current += [dict(t) for t in taints if (t["key"], t["effect"]) not in present]
