"""``NodePoolTrigger``: wait in the triggerer until a node pool is ready, failed, gone or out of time.

Ready is decided in Kubernetes, not by the cloud's API: a cloud reports a pool ACTIVE/RUNNING/Succeeded as soon
as its machines boot, but a node offers its accelerators only once a device plugin has registered them. So after
the cloud says ready, the trigger reads the pool's nodes and succeeds only when every planned node is ``Ready``
with the planned accelerators allocatable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gpuflow.clouds.access import kube_config
from gpuflow.clouds.base import backend_for
from gpuflow.core.clouds import traits
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodeReport, PoolState, Readiness, readiness
from gpuflow.kube.cluster import api_client, pool_nodes
from gpuflow.triggers import events

NEVER_READY = "NodesNeverReady"
UNADVERTISED = "AcceleratorsNotAdvertised"
# How long a pool's nodes may be Ready without advertising their accelerators: pulling and starting a device
# plugin takes a minute or two; far longer means none is coming.
DEFAULT_ADVERTISE_TIMEOUT_S = 600.0


class NodePoolTrigger(BaseTrigger):
    """Polls ``get_node_pool`` until a terminal state; holds identifiers only, never a client or secret.

    :param cluster: the cluster's fields (``Cluster``), enough to rebuild its backend from its connection.
    :param ref: the pool (``NodePoolRef.to_dict()``).
    :param resource: the extended resource its nodes must advertise (``nvidia.com/gpu``...).
    :param accelerators_per_node: how many of it each node must advertise (the plan's count).
    :param nodes: how many nodes the pool was planned with.
    :param timeout_s: how long a pool may take to become ready before it counts as a capacity failure.
    :param poll_interval_s: seconds between polls.
    :param advertise_timeout_s: how long the nodes may be Ready without advertising ``resource`` before the pool
        fails over (no device plugin is running on them).
    """

    def __init__(
        self,
        cluster: dict[str, Any],
        ref: dict[str, str],
        resource: str,
        accelerators_per_node: int,
        nodes: int,
        timeout_s: float,
        poll_interval_s: float = 10.0,
        advertise_timeout_s: float = DEFAULT_ADVERTISE_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.ref = ref
        self.resource = resource
        self.accelerators_per_node = accelerators_per_node
        self.nodes = nodes
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.advertise_timeout_s = advertise_timeout_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "cluster": self.cluster,
            "ref": self.ref,
            "resource": self.resource,
            "accelerators_per_node": self.accelerators_per_node,
            "nodes": self.nodes,
            "timeout_s": self.timeout_s,
            "poll_interval_s": self.poll_interval_s,
            "advertise_timeout_s": self.advertise_timeout_s,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = backend_for(Cluster(**self.cluster))
        ref = NodePoolRef.from_dict(self.ref)
        deadline = time.monotonic() + self.timeout_s
        unadvertised_since: float | None = None  # since when every node is Ready but short of accelerators
        while True:
            try:
                status = await asyncio.to_thread(backend.get_node_pool, ref)
            except CloudError as error:
                if error.kind is not ErrorKind.TRANSIENT:
                    yield TriggerEvent(events.failed(error, self.ref))
                    return
                self.log.warning("pool %s: transient error while polling (%s); polling on", ref.name, error)
            else:
                self.log.info("pool %s: %s (%d nodes ready)", ref.name, status.state.value, status.ready_nodes)
                if status.state is PoolState.READY:
                    verdict = await self._in_kubernetes(ref)
                    if verdict is Readiness.READY:
                        yield TriggerEvent(events.success(self.ref, ready_nodes=self.nodes))
                        return
                    if verdict is not None:  # None: Kubernetes did not answer; keep what was known
                        now = time.monotonic()
                        unadvertised_since = (unadvertised_since or now) if verdict is Readiness.UNADVERTISED else None
                    if unadvertised_since and time.monotonic() - unadvertised_since >= self.advertise_timeout_s:
                        yield TriggerEvent(events.failed(self._unadvertised(ref), self.ref))
                        return
                if status.state in (PoolState.FAILED, PoolState.GONE, PoolState.DELETING):
                    yield TriggerEvent(events.failed(status.error or _vanished(ref, status.state), self.ref))
                    return
            if time.monotonic() >= deadline:
                late = self._unadvertised(ref) if unadvertised_since else _never_ready(ref, self.timeout_s)
                yield TriggerEvent(events.failed(late, self.ref))
                return
            await asyncio.sleep(self.poll_interval_s)

    async def _in_kubernetes(self, ref: NodePoolRef) -> Readiness | None:
        """Where the pool stands in Kubernetes; None when its API could not be read (polled again next time)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            nodes = await asyncio.to_thread(_pool_nodes, Cluster(**self.cluster), ref.name, self.resource)
        except (ApiException, HTTPError, OSError, CloudError) as error:
            self.log.warning("pool %s: could not read its nodes in Kubernetes (%s); polling on", ref.name, error)
            return None
        verdict = readiness(nodes, self.nodes, self.accelerators_per_node)
        shown = ", ".join(f"{n.name} ready={n.ready} {self.resource}={n.allocatable}" for n in nodes) or "no nodes"
        self.log.info("pool %s in Kubernetes: %s (%s)", ref.name, verdict.value, shown)
        return verdict

    def _unadvertised(self, ref: NodePoolRef) -> CloudError:
        return CloudError(
            cloud=ref.cloud,
            code=UNADVERTISED,
            kind=ErrorKind.CAPACITY,
            scope=Scope.OFFER,
            message=(
                f"nodes of pool {ref.name} joined but never advertised {self.resource} "
                f"({self.accelerators_per_node} per node planned): is the device plugin running? Run a "
                f"{self.resource} device plugin DaemonSet that tolerates the pool's taints (docs/real-clouds.md, "
                '"Device plugins")'
            ),
            resource=ref.name,
        )


def _pool_nodes(cluster: Cluster, pool: str, resource: str) -> list[NodeReport]:
    """The pool's nodes as its cluster's Kubernetes API reports them (blocking: run in a thread)."""
    return pool_nodes(api_client(kube_config(cluster)), traits(cluster.cloud).pool_label, pool, resource)


def _vanished(ref: NodePoolRef, state: PoolState) -> CloudError:
    return CloudError(
        cloud=ref.cloud,
        code=f"NodePool{state.value.title()}",
        kind=ErrorKind.CAPACITY,
        scope=Scope.OFFER,
        message=f"node pool {ref.name} is {state.value} while waiting for it to become ready",
        resource=ref.name,
    )


def _never_ready(ref: NodePoolRef, timeout_s: float) -> CloudError:
    return CloudError(
        cloud=ref.cloud,
        code=NEVER_READY,
        kind=ErrorKind.CAPACITY,
        scope=Scope.OFFER,
        message=f"node pool {ref.name} was not ready after {timeout_s:.0f}s",
        resource=ref.name,
    )
