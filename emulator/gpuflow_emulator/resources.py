"""The resource types this API server serves, and their discovery documents.

Only what KubernetesPodOperator, gpuflow's manifests and kubectl get/describe/logs use is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuflow_emulator.errors import ApiError

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    """One resource type: its URL segment (plural), kind, group/version and scope."""

    name: str
    kind: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def discovery(self) -> list[dict[str, Any]]:
        """Entries of an `APIResourceList` for this type and its subresources."""
        main = {
            "name": self.name,
            "singularName": self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
            "shortNames": list(self.short_names),
        }
        subs = [
            {
                "name": f"{self.name}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get"],
            }
            for sub in self.subresources
        ]
        return [main, *subs]


RESOURCES: tuple[Resource, ...] = (
    Resource("namespaces", "Namespace", "", "v1", False, ("ns",), ("create", "delete", "get", "list", "watch")),
    Resource("nodes", "Node", "", "v1", False, ("no",), READ_VERBS, ("status",)),
    Resource("pods", "Pod", "", "v1", True, ("po",), ALL_VERBS, ("status", "log", "proxy")),
    Resource("events", "Event", "", "v1", True, ("ev",)),
    Resource("services", "Service", "", "v1", True, ("svc",), ALL_VERBS, ("status", "proxy")),
    Resource("secrets", "Secret", "", "v1", True),
    Resource("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",)),
    Resource("deployments", "Deployment", "apps", "v1", True, ("deploy",), ALL_VERBS, ("status",)),
    Resource("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",), ALL_VERBS, ("status",)),
    Resource("jobs", "Job", "batch", "v1", True, (), ALL_VERBS, ("status",)),
    # Stored only, never enforced (no RBAC here); served so add-ons that ship their RBAC objects apply.
    Resource("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", False),
    Resource("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", False),
)

GROUP_VERSIONS: tuple[tuple[str, str], ...] = (
    ("", "v1"),
    ("apps", "v1"),
    ("batch", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
)


def not_served() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def lookup(group: str, version: str, name: str) -> Resource:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.name) == (group, version, name):
            return resource
    raise not_served()


def by_kind(kind: str) -> Resource:
    return next(resource for resource in RESOURCES if resource.kind == kind)


def resource_list(group: str, version: str) -> dict[str, Any]:
    """The `APIResourceList` kubectl reads to map `pods` or `po` to a URL."""
    if (group, version) not in GROUP_VERSIONS:
        raise not_served()
    entries = [entry for r in RESOURCES if (r.group, r.version) == (group, version) for entry in r.discovery()]
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_group_list() -> dict[str, Any]:
    groups = [api_group(group) for group, _ in GROUP_VERSIONS if group]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    if not versions:
        raise not_served()
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }
