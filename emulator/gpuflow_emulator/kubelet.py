"""The kubelets of one cluster: a PodWorker per pod bound to a node, ended on deletion or node loss."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gpuflow_emulator import dns
from gpuflow_emulator.config import EmulatorConfig
from gpuflow_emulator.errors import ApiError
from gpuflow_emulator.events import EventRecorder
from gpuflow_emulator.pod_worker import PODS, PodWorker
from gpuflow_emulator.store import Obj, Store

TERMINAL_PHASES = ("Succeeded", "Failed")
SHUTDOWN_GRACE_SECONDS = 5

log = logging.getLogger(__name__)


class Kubelet:
    def __init__(self, cluster: str, store: Store, events: EventRecorder, config: EmulatorConfig) -> None:
        self._cluster, self._store, self._events, self._config = cluster, store, events, config
        self._workers: dict[str, PodWorker] = {}
        self._terminating: dict[str, asyncio.Task[None]] = {}

    def worker(self, uid: str) -> PodWorker | None:
        return self._workers.get(uid)

    def sync(self) -> None:
        """Start workers for newly bound pods, and graceful termination for pods marked for deletion."""
        bound = {p["metadata"]["uid"]: p for p in self._store.list(PODS) if p["spec"].get("nodeName")}
        for uid, pod in bound.items():
            deleting = "deletionTimestamp" in pod["metadata"]
            if uid not in self._workers and not deleting and pod.get("status", {}).get("phase") not in TERMINAL_PHASES:
                self._workers[uid] = PodWorker(self._store, self._events, self._config, self._cluster, pod)
                self._workers[uid].start()
            if deleting and uid not in self._terminating:
                self._terminating[uid] = asyncio.create_task(self._terminate(pod))
        for uid in set(self._workers) - set(bound):
            del self._workers[uid]

    def publish_dns(self) -> None:
        """Give every running pod the pod names published now (dns.py)."""
        published = dns.records(self._store)
        for worker in self._workers.values():
            worker.publish_hosts(published)

    async def _terminate(self, pod: Obj) -> None:
        meta = pod["metadata"]
        worker = self._workers.get(meta["uid"])
        if worker is not None:
            await worker.terminate(float(meta.get("deletionGracePeriodSeconds", 30)))
        current = self._store.find(PODS, meta["namespace"], meta["name"])
        if current is not None and current["metadata"]["uid"] == meta["uid"]:
            with contextlib.suppress(ApiError):
                self._store.delete(PODS, meta["namespace"], meta["name"])
        log.info("pod %s/%s deleted", meta["namespace"], meta["name"])
        self._terminating.pop(meta["uid"], None)

    def _running_on(self, node: str) -> list[PodWorker]:
        return [w for w in self._workers.values() if w.node == node and w.phase not in TERMINAL_PHASES]

    async def lose_node(self, node: str, reason: str, message: str) -> None:
        await asyncio.gather(*(w.lose_node(reason, message) for w in self._running_on(node)))

    async def shut_down_node(self, node: str, windows: tuple[float, float], reason: str, message: str) -> None:
        """Graceful node shutdown, as the kubelet's shutdown manager runs it: ordinary pods first, then critical ones,
        each group within its window (seconds); a pod whose own grace period is shorter gets that."""
        workers = self._running_on(node)
        groups = ([w for w in workers if not w.critical], [w for w in workers if w.critical])
        for group, window in zip(groups, windows, strict=True):
            await asyncio.gather(*(w.shut_down(min(w.grace_seconds, window), reason, message) for w in group))

    async def shutdown(self) -> None:
        """End every container process (the emulator is stopping)."""
        await asyncio.gather(*(w.terminate(SHUTDOWN_GRACE_SECONDS) for w in self._workers.values()))
        await asyncio.gather(*self._terminating.values(), return_exceptions=True)
