"""Deployment controller: keeps `replicas` pods of the current template and rolls them on a template change.

There are no ReplicaSet objects: pods are owned by their Deployment directly and carry the
`pod-template-hash` label of the template they were made from. RollingUpdate honours maxSurge and
maxUnavailable (not-ready old pods are always replaced first); Recreate removes all old pods first.
Availability is readiness (minReadySeconds is not emulated).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable

from gpuflow_emulator.admission import admit
from gpuflow_emulator.conditions import condition_true, set_condition
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store

DEPLOYMENTS, PODS = by_kind("Deployment"), by_kind("Pod")
HASH_LABEL = "pod-template-hash"
TERMINAL_PHASES = ("Succeeded", "Failed")


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _scaled(value: int | str, replicas: int, round_up: bool) -> int:
    """maxSurge / maxUnavailable as a count: a percentage of replicas, rounded as the controller rounds."""
    if isinstance(value, int):
        return value
    share = replicas * int(value.rstrip("%")) / 100
    return math.ceil(share) if round_up else math.floor(share)


def _ready(pod: Obj) -> bool:
    return condition_true(pod, "Ready")


class DeploymentController:
    def __init__(self, store: Store, delete_pod: Callable[[str, str], object]) -> None:
        self._store = store
        self._delete_pod = delete_pod

    def sync(self) -> None:
        deployments = self._store.list(DEPLOYMENTS)
        owners = {d["metadata"]["uid"] for d in deployments}
        for pod in self._store.list(PODS):
            refs = pod["metadata"].get("ownerReferences") or []
            if any(r["kind"] == "Deployment" and r["uid"] not in owners for r in refs):
                self._delete(pod)  # garbage collection of a deleted Deployment's pods
        for deployment in deployments:
            self._sync_one(deployment)

    def _delete(self, pod: Obj) -> None:
        if "deletionTimestamp" not in pod["metadata"]:
            self._delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _sync_one(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        current = template_hash(spec["template"])
        owned = self._store.list(
            PODS,
            meta["namespace"],
            lambda p: any(r["uid"] == meta["uid"] for r in p["metadata"].get("ownerReferences") or []),
        )
        for pod in owned:
            if pod.get("status", {}).get("phase") in TERMINAL_PHASES:
                self._delete(pod)  # a failed pod (e.g. its node was lost) is replaced
        active = [
            p
            for p in owned
            if "deletionTimestamp" not in p["metadata"] and p.get("status", {}).get("phase") not in TERMINAL_PHASES
        ]
        new = [p for p in active if p["metadata"]["labels"].get(HASH_LABEL) == current]
        old = [p for p in active if p not in new]
        unavailable = self._roll(deployment, current, new, old, owned, active)
        self._publish_status(deployment, current, new, active, unavailable)

    def _roll(
        self,
        deployment: Obj,
        current: str,
        new: list[Obj],
        old: list[Obj],
        owned: list[Obj],
        active: list[Obj],
    ) -> int:
        """Create and delete pods one step towards the desired state; returns maxUnavailable as a count."""
        spec = deployment["spec"]
        replicas = spec["replicas"]
        for pod in sorted(new, key=_ready)[: max(0, len(new) - replicas)]:
            self._delete(pod)
        if spec["strategy"]["type"] == "Recreate":
            for pod in old:
                self._delete(pod)
            old_left = any(p["metadata"]["labels"].get(HASH_LABEL) != current for p in owned)
            for _ in range(0 if old_left else replicas - len(new)):
                self._create_pod(deployment, current)
            return 0
        rolling = spec["strategy"]["rollingUpdate"]
        surge = _scaled(rolling["maxSurge"], replicas, round_up=True)
        unavailable = _scaled(rolling["maxUnavailable"], replicas, round_up=False) or (0 if surge else 1)
        for _ in range(max(0, min(replicas - len(new), replicas + surge - len(active)))):
            self._create_pod(deployment, current)
        ready_total = sum(1 for p in active if _ready(p))
        for pod in sorted(old, key=_ready):
            if not _ready(pod):
                self._delete(pod)
            elif ready_total > replicas - unavailable:
                self._delete(pod)
                ready_total -= 1
        return unavailable

    def _create_pod(self, deployment: Obj, current: str) -> None:
        meta, template = deployment["metadata"], copy.deepcopy(deployment["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-{current}-",
                "labels": {**(template_meta.get("labels") or {}), HASH_LABEL: current},
                "annotations": template_meta.get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        self._store.create(PODS, meta["namespace"], admit(PODS, pod))

    def _publish_status(
        self, deployment: Obj, current: str, new: list[Obj], active: list[Obj], unavailable: int
    ) -> None:
        replicas = deployment["spec"]["replicas"]
        ready = sum(1 for p in active if _ready(p))
        replica_set = f"{deployment['metadata']['name']}-{current}"
        complete = len(new) == len(active) == replicas and ready == replicas

        def apply(obj: Obj) -> None:
            counts = {
                "replicas": len(active),
                "updatedReplicas": len(new),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": max(0, replicas - ready),
            }
            status = obj.setdefault("status", {})
            for field, value in counts.items():
                if value:
                    status[field] = value
                else:
                    status.pop(field, None)
            status["observedGeneration"] = obj["metadata"]["generation"]
            if ready >= replicas - unavailable:
                set_condition(
                    status,
                    "Available",
                    True,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            else:
                set_condition(
                    status,
                    "Available",
                    False,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            if complete:
                set_condition(
                    status,
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{replica_set}" has successfully progressed.',
                )
            else:
                set_condition(
                    status,
                    "Progressing",
                    True,
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{replica_set}" is progressing.',
                )

        self._store.mutate(DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"], apply)
