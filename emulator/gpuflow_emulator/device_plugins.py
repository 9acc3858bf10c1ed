"""What a node advertises of the accelerators it holds: only those whose device plugin runs Ready on it.

A kubelet learns of extended resources such as `nvidia.com/gpu` from a device plugin that registers with
it; without one the node holds the hardware but offers none of it, and a pod asking for it stays Pending.
A node's `devices` are that hardware (the node images that ship the plugin advertise theirs from the start,
as plain `allocatable`). A plugin is recognised by its image (the config's `device_plugins` table). Once
registered, the resource stays in the node's capacity; when its plugin goes, allocatable drops to 0, as the
kubelet marks a vanished plugin's devices unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable

from gpuflow_emulator.conditions import condition_true
from gpuflow_emulator.config import EmulatorConfig
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store

NODES, PODS = by_kind("Node"), by_kind("Pod")


class DevicePlugins:
    def __init__(self, store: Store, config: EmulatorConfig) -> None:
        self._store, self._config = store, config
        self._devices: dict[str, dict[str, str]] = {}

    def hold(self, node: str, devices: dict[str, str]) -> None:
        """Node `node` holds `devices` (resource -> count) that it advertises only through a plugin."""
        if devices:
            self._devices[node] = dict(devices)

    def forget(self, node: str) -> None:
        self._devices.pop(node, None)

    def sync(self) -> None:
        serving: dict[str, set[str]] = {}
        for pod in self._store.list(PODS, None, _running_ready):
            for container in pod["spec"]["containers"]:
                if plugin := self._config.device_plugin(container.get("image", "")):
                    serving.setdefault(pod["spec"]["nodeName"], set()).add(plugin.resource)
        for node, devices in self._devices.items():
            if self._store.find(NODES, "", node) is not None:
                self._store.mutate(NODES, "", node, _advertiser(devices, serving.get(node, set())))


def _running_ready(pod: Obj) -> bool:
    running = pod["status"].get("phase") == "Running"
    return bool(pod["spec"].get("nodeName")) and running and condition_true(pod, "Ready")


def _advertiser(devices: dict[str, str], serving: set[str]) -> Callable[[Obj], None]:
    return lambda node: _advertise(node, devices, serving)


def _advertise(node: Obj, devices: dict[str, str], serving: set[str]) -> None:
    status = node["status"]
    capacity, allocatable = dict(status["capacity"]), dict(status["allocatable"])
    for resource, count in devices.items():
        if resource in serving:
            capacity[resource] = allocatable[resource] = count
        elif resource in capacity:
            allocatable[resource] = "0"
    status["capacity"], status["allocatable"] = capacity, allocatable
