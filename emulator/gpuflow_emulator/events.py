"""Recording `Event` objects the way kubelet and scheduler do: repeats bump `count` instead of adding rows."""

from __future__ import annotations

import time
from typing import Any

from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store
from gpuflow_emulator.timeutil import now_iso

EVENTS = by_kind("Event")


class EventRecorder:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, obj: Obj, event_type: str, reason: str, message: str, component: str, host: str = "") -> None:
        """Record that `reason`/`message` happened to `obj` (event_type is Normal or Warning)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        same = self._store.list(
            EVENTS,
            namespace,
            lambda e: (
                e["involvedObject"].get("uid") == meta["uid"] and e["reason"] == reason and e["message"] == message
            ),
        )
        stamp = now_iso()
        if same:

            def bump(event: Obj) -> None:
                event["count"] = event.get("count", 1) + 1
                event["lastTimestamp"] = stamp

            self._store.mutate(EVENTS, namespace, same[0]["metadata"]["name"], bump)
            return
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        event = {
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {
                "kind": obj["kind"],
                "namespace": namespace,
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": obj["apiVersion"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "reportingComponent": component,
            "reportingInstance": host,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._store.create(EVENTS, namespace, event)
