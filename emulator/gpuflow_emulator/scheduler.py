"""Pod placement, as the default scheduler's filter plugins decide it, as pure functions over objects.

A node fits when it is schedulable, its labels satisfy the pod's nodeSelector and required node
affinity, the pod tolerates its NoSchedule/NoExecute taints, and the extended resources the pod
requests (accelerators) are still free. CPU and memory are not accounted: a laptop is not a node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ACCOUNTED_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron", "google.com/tpu")
# What `kubectl cordon` leaves on a node besides spec.unschedulable: the node lifecycle controller's taint for it
# (TaintNodesByCondition). A pod that tolerates it may still land on a cordoned node (DaemonSet pods do).
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Placement:
    """The chosen node, or None and the FailedScheduling message saying why not."""

    node: str | None
    message: str = ""


def requests(pod: Mapping[str, Any]) -> Counter[str]:
    """Accelerators the pod's containers request (requests, else limits, as the API server defaults them)."""
    total: Counter[str] = Counter()
    for container in pod["spec"].get("containers", []):
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name in ACCOUNTED_RESOURCES:
            total[name] += int(wanted.get(name, 0))
    return total


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expression["key"], expression["operator"], expression.get("values") or []
    value = labels.get(key)
    checks = {
        "In": lambda: value in values,
        "NotIn": lambda: value not in values,
        "Exists": lambda: key in labels,
        "DoesNotExist": lambda: key not in labels,
        "Gt": lambda: value is not None and int(value) > int(values[0]),
        "Lt": lambda: value is not None and int(value) < int(values[0]),
    }
    return checks[op]()


def matches_node_selection(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """nodeSelector (all pairs) and required node affinity (any term whose expressions all hold)."""
    spec = pod["spec"]
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    )


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint["key"]:
                return True
        elif toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taint(
    pod: Mapping[str, Any], node: Mapping[str, Any], effects: Sequence[str] = BLOCKING_EFFECTS
) -> Mapping[str, Any] | None:
    """The first of the node's taints with one of `effects` that the pod does not tolerate."""
    tolerations = pod["spec"].get("tolerations") or []
    taints: list[Mapping[str, Any]] = (node.get("spec") or {}).get("taints") or []
    for taint in taints:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return taint
    return None


def _free(node: Mapping[str, Any], bound_pods: Iterable[Mapping[str, Any]]) -> Counter[str]:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    free: Counter[str] = Counter({name: int(allocatable.get(name, 0)) for name in ACCOUNTED_RESOURCES})
    for pod in bound_pods:
        free.subtract(requests(pod))
    return free


def _reasons(pod: Mapping[str, Any], node: Mapping[str, Any], bound_pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why the node does not fit, worded as the scheduler's plugins word it; empty when it fits."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not tolerates(pod["spec"].get("tolerations") or [], UNSCHEDULABLE_TAINT):
        return ["node(s) were unschedulable"]
    if not matches_node_selection(pod, node["metadata"].get("labels") or {}):
        return ["node(s) didn't match Pod's node affinity/selector"]
    if (taint := untolerated_taint(pod, node)) is not None:
        return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    free = _free(node, bound_pods)
    return [f"Insufficient {name}" for name, wanted in sorted(requests(pod).items()) if wanted > free[name]]


def place(
    pod: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    pods_by_node: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Placement:
    """The first fitting node by name, or the message the real scheduler puts in its FailedScheduling event.

    `pods_by_node` holds the non-terminated pods already bound to each node.
    """
    if not nodes:
        return Placement(None, "no nodes available to schedule pods")
    counts: Counter[str] = Counter()
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        reasons = _reasons(pod, node, pods_by_node.get(node["metadata"]["name"], []))
        if not reasons:
            return Placement(node["metadata"]["name"])
        counts.update(reasons)
    summary = ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
    return Placement(None, f"0/{len(nodes)} nodes are available: {summary}.")
