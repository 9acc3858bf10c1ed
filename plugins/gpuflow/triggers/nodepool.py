"""``NodePoolTrigger``: wait in the triggerer until a node pool is ready, failed, gone or out of time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gpuflow.clouds.base import backend_for
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, PoolState
from gpuflow.triggers import events

NEVER_READY = "NodesNeverReady"


class NodePoolTrigger(BaseTrigger):
    """Polls ``get_node_pool`` until a terminal state; holds identifiers only, never a client or secret.

    :param cluster: the cluster's fields (``Cluster``), enough to rebuild its backend from its connection.
    :param ref: the pool (``NodePoolRef.to_dict()``).
    :param timeout_s: how long a pool may take to become ready before it counts as a capacity failure.
    :param poll_interval_s: seconds between polls.
    """

    def __init__(
        self, cluster: dict[str, Any], ref: dict[str, str], timeout_s: float, poll_interval_s: float = 10.0
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.ref = ref
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "cluster": self.cluster,
            "ref": self.ref,
            "timeout_s": self.timeout_s,
            "poll_interval_s": self.poll_interval_s,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = backend_for(Cluster(**self.cluster))
        ref = NodePoolRef.from_dict(self.ref)
        deadline = time.monotonic() + self.timeout_s
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
                    yield TriggerEvent(events.success(self.ref, ready_nodes=status.ready_nodes))
                    return
                if status.state in (PoolState.FAILED, PoolState.GONE, PoolState.DELETING):
                    yield TriggerEvent(events.failed(status.error or _vanished(ref, status.state), self.ref))
                    return
            if time.monotonic() >= deadline:
                yield TriggerEvent(events.failed(_never_ready(ref, self.timeout_s), self.ref))
                return
            await asyncio.sleep(self.poll_interval_s)


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
