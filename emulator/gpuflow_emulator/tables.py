"""`Table` responses (meta.k8s.io/v1), which `kubectl get` asks for to print its columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpuflow_emulator.conditions import condition_true
from gpuflow_emulator.store import Obj
from gpuflow_emulator.timeutil import now, parse_iso

Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority (1 = only with -o wide), cell


def age(obj: Obj) -> str:
    seconds = int((now() - parse_iso(obj["metadata"]["creationTimestamp"])).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def pod_status(pod: Obj) -> str:
    """The STATUS column: Terminating, a reason, a container's waiting/terminated reason, else the phase."""
    status = pod.get("status") or {}
    if "deletionTimestamp" in pod["metadata"]:
        return "Terminating"
    if status.get("reason"):
        return str(status["reason"])
    inits = status.get("initContainerStatuses") or []
    for index, container in enumerate(inits):
        state = container["state"]
        if "terminated" in state and state["terminated"]["exitCode"] == 0:
            continue
        if "waiting" in state and state["waiting"]["reason"] != "PodInitializing":
            return f"Init:{state['waiting']['reason']}"
        return "Init:Error" if "terminated" in state else f"Init:{index}/{len(inits)}"
    for container in status.get("containerStatuses") or []:
        state = container["state"]
        if "waiting" in state:
            return str(state["waiting"]["reason"])
        if "terminated" in state and status.get("phase") != "Running":
            return str(state["terminated"]["reason"])
    return str(status.get("phase", "Unknown"))


def _pod_ready(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(pod['spec']['containers'])}"


def _restarts(pod: Obj) -> int:
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


_NAME: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
_AGE: Column = ("Age", "string", 0, age)
_COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, pod_status),
        ("Restarts", "integer", 0, _restarts),
        _AGE,
        ("IP", "string", 1, lambda p: (p.get("status") or {}).get("podIP", "<none>")),
        ("Node", "string", 1, lambda p: p["spec"].get("nodeName", "<none>")),
    ],
    "Node": [
        _NAME,
        ("Status", "string", 0, lambda n: "Ready" if condition_true(n, "Ready") else "NotReady"),
        _AGE,
        ("Version", "string", 0, lambda n: n["status"]["nodeInfo"]["kubeletVersion"]),
    ],
    "Deployment": [
        _NAME,
        ("Ready", "string", 0, lambda d: f"{d['status'].get('readyReplicas', 0)}/{d['spec']['replicas']}"),
        ("Up-to-date", "integer", 0, lambda d: d["status"].get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda d: d["status"].get("availableReplicas", 0)),
        _AGE,
    ],
}


def table(kind: str, objs: list[Obj], resource_version: str, include_object: bool) -> dict[str, Any]:
    columns = _COLUMNS.get(kind, [_NAME, _AGE])
    definitions = [
        {
            "name": name,
            "type": kind_,
            "format": "name" if name == "Name" else "",
            "description": "",
            "priority": prio,
        }
        for name, kind_, prio, _ in columns
    ]
    rows = [
        {
            "cells": [cell(obj) for *_, cell in columns],
            "object": obj
            if include_object
            else {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objs
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
