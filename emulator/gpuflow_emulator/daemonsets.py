"""DaemonSet controller: one pod of the template on every node the template selects and tolerates.

A node gets a pod when its labels satisfy the template's nodeSelector and required node affinity and the
template tolerates its NoSchedule/NoExecute taints: the scheduler's own filters (`scheduler`), as the real
controller runs them, with the tolerations the controller adds to every daemon pod (`DAEMON_TOLERATIONS`, so a
cordoned node keeps its daemons). A pod already there keeps running unless a NoExecute taint it does not
tolerate appears (`daemon_controller.go` NodeShouldRunDaemonPod: should run vs. should continue running).
Pods are bound to their node when created (the controller's behaviour before Kubernetes 1.12; it now pins them
with a `metadata.name` node affinity and lets the scheduler bind them), and they request no accelerators. A
pod that ended, or whose node left or no longer keeps it, is deleted; a node without a live pod that should
run one gets a new one. Deleting the DaemonSet deletes its pods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from gpuflow_emulator.admission import admit
from gpuflow_emulator.conditions import condition_true
from gpuflow_emulator.deployments import template_hash
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.scheduler import matches_node_selection, untolerated_taint
from gpuflow_emulator.store import Obj, Store

DAEMONSETS, PODS, NODES = by_kind("DaemonSet"), by_kind("Pod"), by_kind("Node")
HASH_LABEL = "controller-revision-hash"
TERMINAL_PHASES = ("Succeeded", "Failed")
# Added to every daemon pod so node problems and cordons do not evict it (kubernetes/kubernetes
# pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations; network-unavailable, added only
# to hostNetwork pods, is left out: emulated nodes never carry it).
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def daemon_spec(template: Obj) -> Obj:
    """The template's pod spec with the daemon tolerations added (those it already has are kept once)."""
    spec = copy.deepcopy(template.get("spec") or {})
    tolerations = spec.get("tolerations") or []
    spec["tolerations"] = tolerations + [t for t in DAEMON_TOLERATIONS if t not in tolerations]
    return spec


def eligible(template: Obj, node: Obj, effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> bool:
    """Whether a DaemonSet whose pod template is `template` runs a pod on `node`; with ``effects=("NoExecute",)``,
    whether a pod already there keeps running."""
    pod = {"spec": daemon_spec(template)}
    labels = node["metadata"].get("labels") or {}
    return matches_node_selection(pod, labels) and untolerated_taint(pod, node, effects) is None


class DaemonSetController:
    def __init__(self, store: Store, delete_pod: Callable[[str, str], object]) -> None:
        self._store = store
        self._delete_pod = delete_pod

    def sync(self) -> None:
        daemonsets = self._store.list(DAEMONSETS)
        owners = {d["metadata"]["uid"] for d in daemonsets}
        for pod in self._store.list(PODS):
            refs = pod["metadata"].get("ownerReferences") or []
            if any(r["kind"] == "DaemonSet" and r["uid"] not in owners for r in refs):
                self._delete(pod)  # garbage collection of a deleted DaemonSet's pods
        nodes = self._store.list(NODES)
        for daemonset in daemonsets:
            self._sync_one(daemonset, nodes)

    def _delete(self, pod: Obj) -> None:
        if "deletionTimestamp" not in pod["metadata"]:
            self._delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _sync_one(self, daemonset: Obj, nodes: list[Obj]) -> None:
        meta, template = daemonset["metadata"], daemonset["spec"]["template"]
        wanted = {n["metadata"]["name"] for n in nodes if eligible(template, n)}
        kept = {n["metadata"]["name"] for n in nodes if eligible(template, n, ("NoExecute",))}
        owned = self._store.list(
            PODS,
            meta["namespace"],
            lambda p: any(r["uid"] == meta["uid"] for r in p["metadata"].get("ownerReferences") or []),
        )
        live: dict[str, Obj] = {}
        for pod in owned:
            node = pod["spec"].get("nodeName", "")
            ended = pod["status"].get("phase") in TERMINAL_PHASES
            if ended or node not in kept or node in live:
                self._delete(pod)
            elif "deletionTimestamp" not in pod["metadata"]:
                live[node] = pod
        for node in sorted(wanted - set(live)):
            self._create_pod(daemonset, node)
        self._publish_status(daemonset, len(wanted), list(live.values()))

    def _create_pod(self, daemonset: Obj, node: str) -> None:
        meta, template = daemonset["metadata"], copy.deepcopy(daemonset["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": {**(template_meta.get("labels") or {}), HASH_LABEL: template_hash(template)},
                "annotations": template_meta.get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**daemon_spec(template), "nodeName": node},
        }
        self._store.create(PODS, meta["namespace"], admit(PODS, pod))

    def _publish_status(self, daemonset: Obj, desired: int, live: list[Obj]) -> None:
        ready = sum(1 for pod in live if condition_true(pod, "Ready"))
        current = template_hash(daemonset["spec"]["template"])
        required = {  # always present in a real status, zeros included
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": len(live),
            "numberMisscheduled": 0,
            "numberReady": ready,
        }
        optional = {  # omitted when zero, as the API server's JSON leaves them out
            "numberAvailable": ready,
            "numberUnavailable": desired - ready,
            "updatedNumberScheduled": sum(1 for p in live if p["metadata"]["labels"].get(HASH_LABEL) == current),
        }

        def apply(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status.update(required, observedGeneration=obj["metadata"]["generation"])
            for field, value in optional.items():
                if value:
                    status[field] = value
                else:
                    status.pop(field, None)

        self._store.mutate(DAEMONSETS, daemonset["metadata"]["namespace"], daemonset["metadata"]["name"], apply)
