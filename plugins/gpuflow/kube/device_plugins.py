"""Device plugin DaemonSets gpuflow installs as cluster add-ons where a cloud's node image ships none.

A node holds its GPUs (Neuron devices) but advertises none of them until a device plugin registers them with its
kubelet; a training pod asking for them would sit Pending until its schedule timeout, on a paid pool. Which
clouds need the add-on for which resource is ``CloudTraits.device_plugin_addons``.

Each add-on is one DaemonSet (plus the RBAC objects its plugin needs) in ``kube-system``, shared by every run on
the cluster: it tolerates gpuflow's accelerator taint and the cloud's spot taint, runs only on nodes of gpuflow's
pools (the ``gpuflow.io/accelerator`` label), and carries no run or ownership label, so neither a teardown nor
the janitor ever deletes it. It is created when missing and left as it is when present, so a DaemonSet of the
same name installed by the cluster's owner (their version, their settings) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpuflow.core import accelerators
from gpuflow.core.clouds import traits
from gpuflow.core.nodepool import ACCELERATOR_LABEL

NAMESPACE = "kube-system"
ADDON_LABEL = "gpuflow.io/addon"
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"


@dataclass(frozen=True, slots=True)
class DevicePlugin:
    """One vendor's device plugin: the image pinned from its upstream static manifest, and what else it needs."""

    name: str
    image: str
    source: str  # the upstream manifest this one follows
    env: tuple[dict[str, Any], ...] = ()
    host_paths: dict[str, str] = field(default_factory=dict)  # volume name -> host path, mounted at the same path
    cluster_role_rules: tuple[dict[str, Any], ...] = ()  # API access the plugin needs; none: no RBAC objects


PLUGINS: dict[str, DevicePlugin] = {
    accelerators.NVIDIA: DevicePlugin(
        name="gpuflow-nvidia-device-plugin",
        image="nvcr.io/nvidia/k8s-device-plugin:v0.17.1",
        source="https://github.com/NVIDIA/k8s-device-plugin/blob/main/deployments/static/nvidia-device-plugin.yml",
        # A node whose driver is not loaded yet keeps the plugin running (and retrying) instead of crash-looping.
        env=({"name": "FAIL_ON_INIT_ERROR", "value": "false"},),
        host_paths={"device-plugin": DEVICE_PLUGIN_DIR},
    ),
    accelerators.NEURON: DevicePlugin(
        name="gpuflow-neuron-device-plugin",
        image="public.ecr.aws/neuron/neuron-device-plugin:2.12.5.0",
        source="https://github.com/aws-neuron/aws-neuron-sdk/blob/master/src/k8/k8s-neuron-device-plugin.yml",
        env=(
            {"name": "KUBECONFIG", "value": "/etc/kubernetes/kubelet.conf"},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ),
        host_paths={"device-plugin": DEVICE_PLUGIN_DIR, "infa-map": "/run"},
        # k8s-neuron-device-plugin-rbac.yml: it reads nodes and pods and annotates them with the devices it hands out.
        cluster_role_rules=(
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["update", "patch", "get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
        ),
    ),
}


def addon_manifests(cloud: str, resource: str) -> list[dict[str, Any]]:
    """What to install on a ``cloud`` cluster before its pools can offer ``resource``; empty when its node image
    ships the plugin (``CloudTraits.device_plugin_addons``)."""
    facts = traits(cloud)
    if resource not in facts.device_plugin_addons:
        return []
    plugin = PLUGINS[resource]
    taints = [resource, *([facts.spot_taint[0]] if facts.spot_taint else [])]
    rbac = _rbac(plugin) if plugin.cluster_role_rules else []
    return [*rbac, _daemonset(plugin, taints)]


def _labels(plugin: DevicePlugin) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": plugin.name,
        "app.kubernetes.io/managed-by": "gpuflow",
        ADDON_LABEL: "device-plugin",
    }


def _metadata(plugin: DevicePlugin, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": plugin.name, "labels": _labels(plugin)}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def _rbac(plugin: DevicePlugin) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(plugin)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _metadata(plugin, namespaced=False),
            "rules": [dict(rule) for rule in plugin.cluster_role_rules],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _metadata(plugin, namespaced=False),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": plugin.name},
            "subjects": [{"kind": "ServiceAccount", "name": plugin.name, "namespace": NAMESPACE}],
        },
    ]


def _daemonset(plugin: DevicePlugin, tolerated_taint_keys: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "device-plugin",
        "image": plugin.image,
        "env": [dict(variable) for variable in plugin.env],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": name, "mountPath": path} for name, path in plugin.host_paths.items()],
    }
    pod_spec: dict[str, Any] = {
        "priorityClassName": "system-node-critical",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": ACCELERATOR_LABEL, "operator": "Exists"}]}]
                }
            }
        },
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            *({"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in tolerated_taint_keys),
        ],
        "containers": [container],
        "volumes": [{"name": name, "hostPath": {"path": path}} for name, path in plugin.host_paths.items()],
    }
    if plugin.cluster_role_rules:
        pod_spec["serviceAccountName"] = plugin.name
    selector = {"app.kubernetes.io/name": plugin.name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(plugin),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": _labels(plugin)}, "spec": pod_spec},
        },
    }
