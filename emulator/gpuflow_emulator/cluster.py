"""One emulated cluster: object store, scheduler, kubelets, Deployment, DaemonSet and Job controllers, device
plugins, cluster DNS, and the loop driving them.

Every store change wakes the control loop, which runs one idempotent pass: Deployments, DaemonSets, Jobs,
scheduling, the kubelets and the pod names they resolve, then what each node advertises of its accelerators.
A pass also runs every RESYNC_SECONDS, so retries need no extra timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from datetime import timedelta

from gpuflow_emulator import admission
from gpuflow_emulator.conditions import set_condition
from gpuflow_emulator.config import EmulatorConfig
from gpuflow_emulator.daemonsets import DaemonSetController
from gpuflow_emulator.deployments import DeploymentController
from gpuflow_emulator.device_plugins import DevicePlugins
from gpuflow_emulator.events import EventRecorder
from gpuflow_emulator.jobs import JobController
from gpuflow_emulator.kubelet import TERMINAL_PHASES, Kubelet
from gpuflow_emulator.node_disruption import NodeDisruption
from gpuflow_emulator.resources import RESOURCES, by_kind
from gpuflow_emulator.scheduler import place
from gpuflow_emulator.store import Obj, Store
from gpuflow_emulator.timeutil import iso, now

NODES, PODS, NAMESPACES, JOBS = by_kind("Node"), by_kind("Pod"), by_kind("Namespace"), by_kind("Job")
RESYNC_SECONDS = 1.0
INITIAL_NAMESPACES = ("default", "kube-system")

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self, name: str, config: EmulatorConfig) -> None:
        self.name = name
        self.store = Store()
        self.events = EventRecorder(self.store)
        self.kubelet = Kubelet(name, self.store, self.events, config)
        self._deployments = DeploymentController(self.store, self.delete_pod)
        self._daemonsets = DaemonSetController(self.store, self.delete_pod)
        self._jobs = JobController(self.store, self.delete_pod)
        self._device_plugins = DevicePlugins(self.store, config)
        self.disruption = NodeDisruption(self.store, self.events, self.kubelet, self.delete_pod)
        self._unschedulable: dict[str, str] = {}
        self._dirty = asyncio.Event()
        self.store.subscribe(lambda _change: self._dirty.set())
        for namespace in INITIAL_NAMESPACES:
            self.store.create(NAMESPACES, "", admission.admit(NAMESPACES, {"metadata": {"name": namespace}}))
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name=f"cluster {self.name}")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), RESYNC_SECONDS)
            self._dirty.clear()
            try:
                self._deployments.sync()
                self._daemonsets.sync()
                self._jobs.sync()
                self._schedule()
                self.kubelet.sync()
                self.kubelet.publish_dns()
                self._device_plugins.sync()
            except Exception:
                log.exception("cluster %s: control loop error", self.name)

    # ---- nodes ----

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
        devices: dict[str, str] | None = None,
    ) -> Obj:
        """Register a Ready node (as its kubelet would); raises ApiError 409 if the name is taken.

        `allocatable` is advertised at once; `devices` (accelerators) only while their device plugin runs here.
        """
        resources = {"cpu": str(os.cpu_count() or 1), "memory": "16Gi", "pods": "110", **(allocatable or {})}
        node: Obj = {
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **(labels or {}),
                },
            },
            "spec": {"taints": taints} if taints else {},
            "status": {
                "capacity": dict(resources),
                "allocatable": dict(resources),
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0-gpuflow-emulator",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "gpuflow-emulator://local",
                    "kernelVersion": platform.release(),
                    "osImage": "gpuflow emulator",
                    "kubeProxyVersion": "",
                    "bootID": name,
                    "machineID": name,
                    "systemUUID": name,
                },
            },
        }
        set_condition(node["status"], "Ready", True, "KubeletReady", "kubelet is posting ready status")
        created = self.store.create(NODES, "", node)
        self._device_plugins.hold(name, devices or {})
        log.info(
            "cluster %s: node %s added (labels=%s, taints=%s, allocatable=%s, devices awaiting a plugin=%s)",
            self.name,
            name,
            labels,
            taints,
            allocatable,
            devices,
        )
        return created

    async def remove_node(self, name: str, reason: str = "NodeLost", message: str = "") -> None:
        """Remove a node like a real node loss: its running pods fail with `reason`, then the node is gone."""
        self.store.get(NODES, "", name)
        message = message or f"Node {name} which was running the pod was removed"
        await self.kubelet.lose_node(name, reason, message)
        for pod in self.store.list(PODS, None, lambda p: p["spec"].get("nodeName") == name):
            if pod["status"].get("phase") not in TERMINAL_PHASES:
                self.store.mutate(
                    PODS,
                    pod["metadata"]["namespace"],
                    pod["metadata"]["name"],
                    lambda p: p["status"].update(phase="Failed", reason=reason, message=message),
                )
            self.events.record(pod, "Warning", reason, message, "node-controller")
        self.store.delete(NODES, "", name)
        self._device_plugins.forget(name)
        log.info("cluster %s: node %s removed (%s)", self.name, name, reason)

    async def delete_node(self, name: str) -> None:
        """Delete the Node and every pod bound to it at once (a controller that knows the machine was replaced does
        so: nothing there is running any more); a process still running there is killed first."""
        await self.kubelet.lose_node(name, "NodeLost", f"Node {name} was deleted")
        for pod in self.store.list(PODS, None, lambda p: p["spec"].get("nodeName") == name):
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.store.delete(NODES, "", name)
        self._device_plugins.forget(name)
        log.info("cluster %s: node %s deleted with its pods", self.name, name)

    # ---- deletion ----

    def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None) -> Obj:
        """Delete at once when nothing runs; else mark it and let the kubelet stop it within the grace."""
        pod = self.store.get(PODS, namespace, name)
        meta = pod["metadata"]
        worker = self.kubelet.worker(meta["uid"])
        if "deletionTimestamp" in meta:
            return pod
        if worker is None or worker.phase in TERMINAL_PHASES:
            return self.store.delete(PODS, namespace, name)
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30) if grace_seconds is None else grace_seconds

        def mark(obj: Obj) -> None:
            obj["metadata"]["deletionTimestamp"] = iso(now() + timedelta(seconds=grace))
            obj["metadata"]["deletionGracePeriodSeconds"] = grace

        log.info("pod %s/%s: deleting with a %ss grace period", namespace, name, grace)
        return self.store.mutate(PODS, namespace, name, mark) or pod

    def delete_job(self, namespace: str, name: str, propagation: str | None) -> Obj:
        """Delete a Job; its pods go too with propagation Background or Foreground (the Job controller collects
        them; Foreground is not waited for). Without one, batch/v1 orphans them, as the API server's default for Jobs
        does (kubernetes/kubernetes pkg/registry/batch/job/strategy.go, DefaultGarbageCollectionPolicy)."""
        job = self.store.delete(JOBS, namespace, name)
        if propagation in (None, "Orphan"):
            uid = job["metadata"]["uid"]

            def orphan(pod: Obj) -> None:
                pod["metadata"]["ownerReferences"] = [r for r in pod["metadata"]["ownerReferences"] if r["uid"] != uid]

            for pod in self.store.list(PODS, namespace):
                if any(ref["uid"] == uid for ref in pod["metadata"].get("ownerReferences") or []):
                    self.store.mutate(PODS, namespace, pod["metadata"]["name"], orphan)
        return job

    def delete_namespace(self, name: str) -> Obj:
        namespace = self.store.get(NAMESPACES, "", name)
        for pod in self.store.list(PODS, name):
            self.delete_pod(name, pod["metadata"]["name"], 0)
        for resource in RESOURCES:
            if resource.namespaced and resource is not PODS:
                for obj in self.store.list(resource, name):
                    self.store.delete(resource, name, obj["metadata"]["name"])
        self.store.delete(NAMESPACES, "", name)
        return namespace

    # ---- scheduling ----

    def _schedule(self) -> None:
        nodes = self.store.list(NODES)
        pods = self.store.list(PODS)
        live = {pod["metadata"]["uid"] for pod in pods}
        self._unschedulable = {uid: message for uid, message in self._unschedulable.items() if uid in live}
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            if pod["spec"].get("nodeName") and pod["status"].get("phase") not in TERMINAL_PHASES:
                by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
        for pod in pods:
            if pod["spec"].get("nodeName") or "deletionTimestamp" in pod["metadata"]:
                continue
            placement = place(pod, nodes, by_node)
            if placement.node:
                self._bind(pod, placement.node)
                by_node.setdefault(placement.node, []).append(pod)
            elif self._unschedulable.get(pod["metadata"]["uid"]) != placement.message:
                self._unschedulable[pod["metadata"]["uid"]] = placement.message
                self._mark_unschedulable(pod, placement.message)

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]

        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node
            set_condition(obj["status"], "PodScheduled", True)

        self.store.mutate(PODS, meta["namespace"], meta["name"], bind)
        self._unschedulable.pop(meta["uid"], None)
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
        self.events.record(pod, "Normal", "Scheduled", message, "default-scheduler")
        log.info("cluster %s: pod %s/%s scheduled on %s", self.name, meta["namespace"], meta["name"], node)

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        self.store.mutate(
            PODS,
            meta["namespace"],
            meta["name"],
            lambda obj: set_condition(obj["status"], "PodScheduled", False, "Unschedulable", message),
        )
        self.events.record(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        log.info("cluster %s: pod %s/%s unschedulable: %s", self.name, meta["namespace"], meta["name"], message)

    async def shutdown(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self.kubelet.shutdown()
