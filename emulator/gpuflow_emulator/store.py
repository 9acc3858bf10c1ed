"""In-memory object store of one cluster: what etcd is to the real API server.

Objects are plain JSON dicts in the wire format. The store stamps uid, resourceVersion,
creationTimestamp and generation, rejects duplicates and stale updates, and tells subscribers
about every change (watch streams and the cluster's control loop). It keeps no history: a watch
can start from "now" only.
"""

from __future__ import annotations

import copy
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpuflow_emulator import errors
from gpuflow_emulator.resources import Resource
from gpuflow_emulator.timeutil import now_iso

Obj = dict[str, Any]
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Change:
    """One committed change, as a watch event type (ADDED, MODIFIED, DELETED) and the object after it."""

    type: str
    resource: str
    obj: Obj


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


class Store:
    """Objects keyed by (resource, namespace, name); namespace is "" for cluster-scoped types."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._revision = 0
        self._subscribers: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> str:
        return str(self._revision)

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback` after every change; returns the function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _commit(self, change_type: str, resource: str, key: Key, obj: Obj) -> Obj:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if change_type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        for callback in list(self._subscribers):
            callback(Change(change_type, resource, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _suffix()
        key = (resource.name, namespace, meta["name"])
        if key in self._objects:
            raise errors.already_exists(resource.name, meta["name"], resource.group)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if resource.namespaced:
            meta["namespace"] = namespace
        # A uid admission minted (a Job's selector names it) is kept; clients' uids never get this far (api.py).
        meta.update(uid=meta.get("uid") or str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
        return self._commit("ADDED", resource.name, key, obj)

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        try:
            return copy.deepcopy(self._objects[(resource.name, namespace, name)])
        except KeyError:
            raise errors.not_found(resource.name, name, resource.group) from None

    def find(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        found = self._objects.get((resource.name, namespace, name))
        return copy.deepcopy(found) if found else None

    def list(
        self, resource: Resource, namespace: str | None = None, where: Callable[[Obj], bool] | None = None
    ) -> list[Obj]:
        """Objects of one type, in one namespace or all (None), filtered by `where`."""
        found = [
            obj
            for (name, ns, _), obj in sorted(self._objects.items())
            if name == resource.name and (namespace is None or ns == namespace) and (where is None or where(obj))
        ]
        return copy.deepcopy(found)

    def replace(self, resource: Resource, namespace: str, obj: Obj, *, keep_status: bool = True) -> Obj:
        """PUT: a stale resourceVersion is a 409 Conflict; status is kept unless `keep_status` is off."""
        name = obj["metadata"]["name"]
        current = self._objects.get((resource.name, namespace, name))
        if current is None:
            raise errors.not_found(resource.name, name, resource.group)
        sent_version = obj["metadata"].get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            why = "the object has been modified; please apply your changes to the latest version and try again"
            raise errors.conflict(resource.name, name, resource.group, why)
        updated = copy.deepcopy(obj)
        updated["apiVersion"], updated["kind"] = resource.api_version, resource.kind
        for field in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp"):
            if field in current["metadata"]:
                updated["metadata"][field] = current["metadata"][field]
        if keep_status and "status" in current:
            updated["status"] = current["status"]
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if updated == current:
            return copy.deepcopy(current)
        return self._commit("MODIFIED", resource.name, (resource.name, namespace, name), updated)

    def mutate(self, resource: Resource, namespace: str, name: str, change: Callable[[Obj], None]) -> Obj | None:
        """Apply `change` to a copy of the object and commit it if anything changed; None if it is gone."""
        current = self._objects.get((resource.name, namespace, name))
        if current is None:
            return None
        updated = copy.deepcopy(current)
        change(updated)
        if updated == current:
            return copy.deepcopy(current)
        return self.replace(resource, namespace, updated, keep_status=False)

    def delete(self, resource: Resource, namespace: str, name: str) -> Obj:
        key = (resource.name, namespace, name)
        if key not in self._objects:
            raise errors.not_found(resource.name, name, resource.group)
        return self._commit("DELETED", resource.name, key, copy.deepcopy(self._objects[key]))
