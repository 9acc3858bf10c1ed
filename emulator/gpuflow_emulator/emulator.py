"""All clusters of one emulator process, and the node interface the cloud half (node pools) drives.

Interface for the cloud half, to be called inside the emulator's event loop:

    emulator.add_node(cluster, name, labels=None, taints=None, allocatable=None, devices=None) -> dict  # Node
    await emulator.remove_node(cluster, name, reason="NodeLost", message="")
    emulator.relabel_node(cluster, name, labels, removed=())
    emulator.cordon_node(cluster, name, taints=())
    emulator.drain_node(cluster, name, within) -> ["namespace/pod", ...]
    await emulator.shut_down_node(cluster, name, windows=(ordinary_seconds, critical_seconds))
    emulator.mark_node_unreachable(cluster, name)
    await emulator.delete_node(cluster, name)

`add_node` registers a Ready node; `allocatable` holds extended resources such as
{"nvidia.com/gpu": "8"}, advertised at once; `devices`, in the same form, are accelerators the node
advertises only while their device plugin runs Ready on it (see `device_plugins`); taints are dicts
like {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}. `remove_node` fails the
pods running there with phase Failed and status.reason `reason` (Deployment pods are then recreated
elsewhere or stay Pending), then deletes the Node. Unknown clusters or nodes raise ApiError (404), a duplicate node 409.
`cordon_node`, `drain_node`, `shut_down_node` and `mark_node_unreachable` take a node out of service as Kubernetes
does (see `node_disruption`); `delete_node` deletes a Node and its pods at once, for a machine replaced under
the same name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from gpuflow_emulator.auth import ADMIN_TOKEN, EntraTokens
from gpuflow_emulator.cluster import Cluster
from gpuflow_emulator.config import EmulatorConfig
from gpuflow_emulator.errors import ApiError
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj

log = logging.getLogger(__name__)
NODES = by_kind("Node")


class Emulator:
    def __init__(self, config: EmulatorConfig, base_url: str) -> None:
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.clusters: dict[str, Cluster] = {}
        # Shared by the Entra endpoint that issues Azure tokens and the AKS API servers that check them.
        self.entra = EntraTokens(config.auth.token_lifetime_seconds)

    def start(self) -> None:
        """Create the configured clusters and their static nodes, start their loops, write kubeconfigs."""
        for spec in self.config.clusters:
            cluster = Cluster(spec.name, self.config)
            self.clusters[spec.name] = cluster
            for node in spec.nodes:
                cluster.add_node(node.name, node.labels, node.taints, node.allocatable)
            cluster.start()
            path = self.write_kubeconfig(spec.name)
            log.info("cluster %s served at %s (kubeconfig %s)", spec.name, self.server_url(spec.name), path)

    def cluster(self, name: str) -> Cluster:
        try:
            return self.clusters[name]
        except KeyError:
            raise ApiError(404, "NotFound", f'cluster "{name}" is not emulated here', {}) from None

    def server_url(self, cluster: str) -> str:
        return f"{self.base_url}/clusters/{cluster}"

    def kubeconfig_path(self, cluster: str) -> Path:
        return self.config.kubeconfig_dir / f"{cluster}.yaml"

    def kubeconfig(self, cluster: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": self.server_url(cluster)}}],
            "users": [{"name": "emulator", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [
                {"name": cluster, "context": {"cluster": cluster, "user": "emulator", "namespace": "default"}}
            ],
            "current-context": cluster,
        }

    def write_kubeconfig(self, cluster: str) -> Path:
        path = self.kubeconfig_path(cluster)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(cluster), sort_keys=False))
        return path

    def add_node(
        self,
        cluster: str,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
        devices: dict[str, str] | None = None,
    ) -> Obj:
        return self.cluster(cluster).add_node(name, labels, taints, allocatable, devices)

    async def remove_node(self, cluster: str, name: str, reason: str = "NodeLost", message: str = "") -> None:
        await self.cluster(cluster).remove_node(name, reason, message)

    def relabel_node(self, cluster: str, name: str, labels: dict[str, str], removed: Iterable[str] = ()) -> Obj | None:
        """Set ``labels`` and drop ``removed`` on a node, as a cloud does when its pool's labels change."""

        def change(node: Obj) -> None:
            current = node["metadata"].setdefault("labels", {})
            for key in removed:
                current.pop(key, None)
            current.update(labels)

        return self.cluster(cluster).store.mutate(NODES, "", name, change)

    def cordon_node(self, cluster: str, name: str, taints: Iterable[dict[str, str]] = ()) -> None:
        self.cluster(cluster).disruption.cordon(name, taints)

    def drain_node(self, cluster: str, name: str, within: float) -> list[str]:
        return self.cluster(cluster).disruption.drain(name, within)

    async def shut_down_node(self, cluster: str, name: str, windows: tuple[float, float]) -> None:
        await self.cluster(cluster).disruption.shut_down(name, windows)

    def mark_node_unreachable(self, cluster: str, name: str) -> None:
        self.cluster(cluster).disruption.unreachable(name)

    async def delete_node(self, cluster: str, name: str) -> None:
        await self.cluster(cluster).delete_node(name)

    def record_node_event(self, cluster: str, node: str, event_type: str, reason: str, message: str) -> None:
        """An event on a Node, as a cloud's node controller posts one (e.g. a spot interruption notice)."""
        target = self.cluster(cluster)
        target.events.record(target.store.get(NODES, "", node), event_type, reason, message, "cloud-node-controller")

    async def shutdown(self) -> None:
        """Stop every cluster; every container process is ended before this returns."""
        await asyncio.gather(*(cluster.shutdown() for cluster in self.clusters.values()))
