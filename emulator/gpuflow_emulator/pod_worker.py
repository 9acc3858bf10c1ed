"""Runs one bound pod: init containers in order, then its containers, each under the pod's restartPolicy.

Each container is a local process group (see process.py). Its image selects a runtime from the config;
an image with no runtime, or images that overflow the node's disk (disk.py), leave the container waiting
with ErrImagePull and a `Failed` event, as an unpullable image would.
Every containerPort gets a free local port, passed to all containers of the pod as
`GPUFLOW_EMULATOR_PORT_<containerPort>`; probes and proxies use the same mapping. A pod with a `subdomain` gets
its own loopback address, its `hostname` and a kubelet-managed `/etc/hosts` (dns.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from gpuflow_emulator import dns, stores
from gpuflow_emulator.conditions import set_condition
from gpuflow_emulator.config import EmulatorConfig, Runtime
from gpuflow_emulator.disk import pull_failure
from gpuflow_emulator.events import EventRecorder
from gpuflow_emulator.probes import ProbeSupervisor
from gpuflow_emulator.process import ContainerLog, ContainerProcess, Isolation
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store
from gpuflow_emulator.timeutil import now_iso

PODS, SECRETS, CONFIGMAPS, NODES = by_kind("Pod"), by_kind("Secret"), by_kind("ConfigMap"), by_kind("Node")
PORT_VARIABLE = "GPUFLOW_EMULATOR_PORT_{}"
MARKER_VARIABLE = "GPUFLOW_EMULATOR_PID"
MAX_BACKOFF_SECONDS = 10
CRITICAL_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")
_VARIABLE_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_KEYED_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

log = logging.getLogger(__name__)


class ContainerConfigError(Exception):
    """A container's env refers to a Secret or ConfigMap (key) that does not exist."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` references in command, args and env values."""
    return _VARIABLE_REFERENCE.sub(lambda m: env.get(m[1], m[0]), text)


def _remap(text: str, mounts: list[tuple[str, Path]]) -> str:
    """A path under a volume's mountPath, as the local directory that stands in for the volume; other text as is.

    Containers are processes on this machine, so a volume cannot appear at its mountPath; the paths a pod names
    in its command, args and env are rewritten instead (a path computed inside the program is not)."""
    for mount_path, local in mounts:
        if text == mount_path or text.startswith(f"{mount_path}/"):
            return f"{local}{text[len(mount_path) :]}"
    return text


def _waiting(container: Obj, reason: str, message: str = "") -> Obj:
    state = {"reason": reason, **({"message": message} if message else {})}
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": state},
    }


class PodWorker:
    def __init__(self, store: Store, events: EventRecorder, config: EmulatorConfig, cluster: str, pod: Obj) -> None:
        meta, self._spec = pod["metadata"], pod["spec"]
        self.uid, self.namespace, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.node: str = self._spec["nodeName"]
        self._pod, self._store, self._events, self._config = pod, store, events, config
        self._cluster = cluster
        self._init_containers: list[Obj] = self._spec.get("initContainers") or []
        self._containers: list[Obj] = self._spec["containers"]
        first_reason = "PodInitializing" if self._init_containers else "ContainerCreating"
        self._statuses = {c["name"]: _waiting(c, "PodInitializing") for c in self._init_containers}
        self._statuses.update({c["name"]: _waiting(c, first_reason) for c in self._containers})
        self.logs: dict[str, ContainerLog] = {}
        self._processes: dict[str, ContainerProcess] = {}
        self._phase = "Pending"
        self._stopping = False
        self._start_time = now_iso()
        all_ports = [p for c in self._containers for p in c.get("ports") or []]
        self.ports = {p["containerPort"]: _free_port() for p in all_ports}
        self._port_names = {p["name"]: p["containerPort"] for p in all_ports if p.get("name")}
        self._root: Path = config.work_dir / cluster / self.namespace / f"{self.name}-{self.uid[:8]}"
        self.hostname: str = self._spec.get("hostname") or self.name
        named = bool(self._spec.get("subdomain"))
        self.address = dns.pod_address() if named else "127.0.0.1"
        self._own = dns.Record(self.namespace, self.hostname, self._spec.get("subdomain", ""), self.address)
        self._hosts = self._root / "etc-hosts" if named else None
        self._isolation = Isolation(config.worker_paths, self._hosts, self._spec.get("hostname"))
        self._task: asyncio.Task[None] | None = None

    @property
    def phase(self) -> str:
        return self._phase

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    def translate_request(self, local_port: int, body: bytes) -> bytes:
        """A JSON request body for the container listening on `local_port`, with the paths under its volumes'
        mountPaths as the local directories standing in for them (as `_remap` does for command, args and env): a
        client may name a file the container sees at its mountPath (vLLM's `lora_path`). Other bodies as they are."""
        container = next(
            (
                c
                for c in self._containers
                for p in c.get("ports") or []
                if self.ports.get(p["containerPort"]) == local_port
            ),
            None,
        )
        if container is None or not body.lstrip().startswith(b"{"):
            return body
        try:
            document = json.loads(body)
        except ValueError:
            return body
        mounts = self._mounts(container)
        translated = {k: _remap(v, mounts) if isinstance(v, str) else v for k, v in document.items()}
        return body if translated == document else json.dumps(translated).encode()

    def host_port(self, port: int | str) -> int | None:
        """The local port a containerPort (number or name) is mapped to."""
        container_port = self._port_names.get(port) if isinstance(port, str) else port
        return self.ports.get(container_port) if container_port is not None else None

    # ---- status ----

    def _publish(self, **extra: Any) -> None:
        def apply(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            status.update(
                phase=self._phase,
                hostIP="127.0.0.1",
                podIP=self.address,
                podIPs=[{"ip": self.address}],
                startTime=self._start_time,
                **extra,
            )
            if self._init_containers:
                status["initContainerStatuses"] = [dict(self._statuses[c["name"]]) for c in self._init_containers]
            status["containerStatuses"] = [dict(self._statuses[c["name"]]) for c in self._containers]
            initialized = all(
                "terminated" in self._statuses[c["name"]]["state"]
                and self._statuses[c["name"]]["state"]["terminated"]["exitCode"] == 0
                for c in self._init_containers
            )
            ready = all(self._statuses[c["name"]]["ready"] for c in self._containers)
            set_condition(status, "PodReadyToStartContainers", not self._stopping)
            set_condition(status, "Initialized", initialized)
            set_condition(status, "ContainersReady", ready)
            set_condition(status, "Ready", ready)

        self._store.mutate(PODS, self.namespace, self.name, apply)

    def publish_hosts(self, published: list[dns.Record]) -> None:
        """Rewrite the pod's hosts file in place (its inode is what the containers have bound on /etc/hosts)."""
        if self._hosts is None:
            return
        content = dns.hosts_file(self._own, published)
        if not self._hosts.exists() or self._hosts.read_text() != content:
            self._root.mkdir(parents=True, exist_ok=True)
            self._hosts.write_text(content)

    def _event(self, event_type: str, reason: str, message: str) -> None:
        self._events.record(self._pod, event_type, reason, message, "kubelet", self.node)

    # ---- lifecycle ----

    async def _run(self) -> None:
        try:
            await self._run_pod()
        except Exception:
            log.exception("pod %s/%s: kubelet error", self.namespace, self.name)

    async def _run_pod(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        if self._hosts is not None and not self._hosts.exists():
            self.publish_hosts([])
        if failure := self._pull_failure():
            image, message = failure
            for container in self._init_containers + self._containers:
                if container.get("image", "") == image:
                    self._statuses[container["name"]] = _waiting(container, "ErrImagePull", message)
            self._event("Warning", "Failed", f'Failed to pull image "{image}": {message}')
            self._publish()
            return
        self._publish()
        for container in self._init_containers:
            if not await self._run_to_completion(container, init=True):
                self._finish("Failed")
                return
        results = await asyncio.gather(*(self._run_to_completion(c, init=False) for c in self._containers))
        self._finish("Succeeded" if all(results) else "Failed")

    def _pull_failure(self) -> tuple[str, str] | None:
        """(image, message) of the first image that cannot be pulled: the node's disk is full, or no runtime."""
        node = self._store.find(NODES, "", self.node) or {}
        if failure := pull_failure(self._pod, node, self._config.image_bytes):
            return failure
        for container in self._init_containers + self._containers:
            image = container.get("image", "")
            if self._config.runtime_for(image) is None:
                return image, f'emulator: no runtime is configured for image "{image}"'
        return None

    def _finish(self, phase: str) -> None:
        if not self._stopping:
            self._phase = phase
            self._publish()
            log.info("pod %s/%s: %s", self.namespace, self.name, phase)

    async def _run_to_completion(self, container: Obj, *, init: bool) -> bool:
        """Run (and restart per restartPolicy) until the container is done; True if it exited 0."""
        policy = self._spec.get("restartPolicy", "Always")
        while True:
            code = await self._run_once(container, init=init)
            done = code == 0 and (init or policy != "Always")
            if self._stopping or done or policy == "Never":
                return code == 0
            status = self._statuses[container["name"]]
            status["restartCount"] += 1
            status["lastState"] = status["state"]
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
            self._publish()
            self._event("Warning", "BackOff", f"Back-off restarting failed container {container['name']}")
            await asyncio.sleep(min(status["restartCount"], MAX_BACKOFF_SECONDS))

    async def _run_once(self, container: Obj, *, init: bool) -> int | None:
        name = container["name"]
        runtime = self._config.runtime_for(container["image"])
        assert runtime is not None
        env = await self._env_when_available(container, runtime)
        mounts = self._mounts(container)
        argv = runtime.argv(
            [_remap(_expand(part, env), mounts) for part in container.get("command") or []],
            [_remap(_expand(part, env), mounts) for part in container.get("args") or []],
        )
        self.logs[name] = container_log = ContainerLog()
        started_at = now_iso()
        try:
            process = await ContainerProcess.start(
                argv, self._working_dir(container), env, container_log, self._isolation
            )
        except (OSError, IndexError) as exc:
            container_log.close()
            return self._terminated(container, 128, "StartError", started_at, f"failed to start {argv}: {exc}")
        self._processes[name] = process
        has_probes = any(container.get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        status = self._statuses[name]
        status.update(
            state={"running": {"startedAt": started_at}},
            containerID=f"emulator://{process.pid}",
            started=not container.get("startupProbe"),
            ready=not init and not has_probes,
        )
        if not init:
            self._phase = "Running"
        self._event("Normal", "Pulled", f'Container image "{container["image"]}" already present on machine')
        self._event("Normal", "Created", f"Created container: {name}")
        self._event("Normal", "Started", f"Started container {name}")
        log.info("pod %s/%s: container %s started (pid %d): %s", self.namespace, self.name, name, process.pid, argv)
        self._publish()
        probes = asyncio.create_task(self._supervise(container, process)) if has_probes and not init else None
        try:
            code = await process.wait()
            log.info("pod %s/%s: container %s exited with code %d", self.namespace, self.name, name, code)
            return self._terminated(container, code, "Completed" if code == 0 else "Error", started_at)
        finally:
            if probes:
                probes.cancel()
            self._processes.pop(name, None)
            container_log.close()  # after the terminated state is published, so followers see both together

    def _terminated(self, container: Obj, code: int, reason: str, started_at: str, message: str = "") -> int:
        terminated = {"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now_iso()}
        if message:
            terminated["message"] = message
        self._statuses[container["name"]].update(state={"terminated": terminated}, ready=False, started=False)
        self._publish()
        return code

    async def _supervise(self, container: Obj, process: ContainerProcess) -> None:
        status = self._statuses[container["name"]]

        def set_state(started: bool, ready: bool) -> None:
            if (status["started"], status["ready"]) != (started, ready):
                status.update(started=started, ready=ready)
                self._publish()

        async def restart(message: str) -> None:
            self._event("Normal", "Killing", message)
            await process.stop(self.grace_seconds)

        supervisor = ProbeSupervisor(
            container,
            self.host_port,
            set_state,
            lambda text: self._event("Warning", "Unhealthy", text),
            restart,
        )
        await supervisor.run()

    # ---- container environment ----

    async def _env_when_available(self, container: Obj, runtime: Runtime) -> dict[str, str]:
        """The env, retried while a referenced Secret or ConfigMap is missing (CreateContainerConfigError)."""
        while True:
            try:
                return self._env(container, runtime)
            except ContainerConfigError as exc:
                self._statuses[container["name"]] = _waiting(container, "CreateContainerConfigError", str(exc))
                self._publish()
                self._event("Warning", "Failed", f"Error: {exc}")
                await asyncio.sleep(2)

    def _env(self, container: Obj, runtime: Runtime) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self._root),
            "HOSTNAME": self.hostname,
            MARKER_VARIABLE: str(os.getpid()),
            **self._storage_env(),
            **runtime.env,
        }
        env.update({PORT_VARIABLE.format(port): str(host) for port, host in self.ports.items()})
        for item in container.get("env") or []:
            if "valueFrom" in item:
                value = self._value_from(item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
            else:
                env[item["name"]] = _expand(item.get("value", ""), env)
        mounts = self._mounts(container)
        return {name: _remap(value, mounts) for name, value in env.items()}

    def _mounts(self, container: Obj) -> list[tuple[str, Path]]:
        """(mountPath, local dir) of the container's emptyDir and PVC mounts, longest path first; each volume is a
        directory of the pod's scratch dir, shared by its containers (an init container fills one for the next)."""
        volumes = {
            volume["name"]: self._root / "volumes" / volume["name"]
            for volume in self._spec.get("volumes") or []
            if "emptyDir" in volume or "persistentVolumeClaim" in volume
        }
        mounts = []
        for mount in container.get("volumeMounts") or []:
            if mount["name"] in volumes:
                local = volumes[mount["name"]] / mount.get("subPath", "")
                local.mkdir(parents=True, exist_ok=True)
                mounts.append((mount["mountPath"].rstrip("/") or "/", local))
        return sorted(mounts, key=lambda item: len(item[0]), reverse=True)

    def _storage_env(self) -> dict[str, str]:
        """How pods of this cluster reach their cloud's store, as the platform would give it (stores.py)."""
        identity, object_stores = self._config.cluster_identity(self._cluster), self._config.object_stores
        if identity is None or object_stores is None:
            return {}
        return stores.pod_env(identity.provider, identity.region, identity.bucket, object_stores)

    def _value_from(self, source: Obj) -> str | None:
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if keyed := _KEYED_FIELD.match(path):
                return str((self._pod["metadata"].get(keyed[1]) or {}).get(keyed[2], ""))
            fields = {
                "metadata.name": self.name,
                "metadata.namespace": self.namespace,
                "metadata.uid": self.uid,
                "spec.nodeName": self.node,
                "status.podIP": self.address,
                "status.hostIP": "127.0.0.1",
            }
            return str(fields.get(path, ""))
        kind, ref = (
            ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else ("ConfigMap", source["configMapKeyRef"])
        )
        obj = self._store.find(SECRETS if kind == "Secret" else CONFIGMAPS, self.namespace, ref["name"])
        data = (obj or {}).get("data") or {}
        if obj is None or ref["key"] not in data:
            if ref.get("optional"):
                return None
            if obj is None:
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}")
        value = data[ref["key"]]
        return base64.b64decode(value).decode() if kind == "Secret" else str(value)

    def _working_dir(self, container: Obj) -> Path:
        """workingDir when it exists on this machine (outside the worker's paths), else the same path under the
        pod's scratch directory."""
        requested: str | None = container.get("workingDir")
        if not requested:
            return self._root
        hidden = any(Path(requested).is_relative_to(path) for path in self._config.worker_paths)
        if Path(requested).is_dir() and not hidden:
            return Path(requested)
        local = self._root / requested.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        return local

    @property
    def grace_seconds(self) -> float:
        """The pod's terminationGracePeriodSeconds (30 when absent, as the API server defaults it)."""
        return float(self._spec.get("terminationGracePeriodSeconds", 30))

    @property
    def critical(self) -> bool:
        """Whether the pod has a system-critical priority class (a node shutdown stops it last)."""
        return self._spec.get("priorityClassName") in CRITICAL_PRIORITY_CLASSES

    # ---- endings ----

    async def _stop(self, stop_process: Any) -> None:
        self._stopping = True
        await asyncio.gather(*(stop_process(p) for p in list(self._processes.values())))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def terminate(self, grace_seconds: float) -> None:
        """Graceful deletion: SIGTERM every container, SIGKILL after the grace period."""
        for name in self._processes:
            self._event("Normal", "Killing", f"Stopping container {name}")
        await self._stop(lambda process: process.stop(grace_seconds))

    async def shut_down(self, grace_seconds: float, reason: str, message: str) -> None:
        """The node is shutting down: SIGTERM, SIGKILL after the grace period, and the pod fails as the kubelet's
        node shutdown manager fails it (phase Failed, `reason`, DisruptionTarget TerminationByKubelet)."""
        processes = dict(self._processes)
        await self.terminate(grace_seconds)
        exits = {name: code for name, process in processes.items() if (code := process.exit_code) is not None}
        self._fail(reason, message, ("TerminationByKubelet", message), exits)

    async def lose_node(self, reason: str, message: str) -> None:
        """The node is gone: processes die at once and the pod fails, as the pod GC marks it."""
        running = set(self._processes)
        await self._stop(lambda process: process.kill())
        self._fail(reason, message, ("DeletionByPodGC", "PodGC: node no longer exists"), lost=running)

    def _fail(
        self,
        reason: str,
        message: str,
        disruption: tuple[str, str],
        exits: Mapping[str, int] | None = None,
        lost: Collection[str] = (),
    ) -> None:
        """End the pod Failed with `reason` and a DisruptionTarget condition (reason, message) saying why. A container
        with no terminated state yet takes its exit code from `exits`; one `lost` or without a code is reported as the
        kubelet reports a container it cannot locate."""
        for container in self._containers + self._init_containers:
            status = self._statuses[container["name"]]
            if container["name"] in lost or "terminated" not in status["state"]:
                code = (exits or {}).get(container["name"])
                state = _unknown_container() if code is None else _exited(status, code)
                status.update(ready=False, started=False, state={"terminated": state})
        self._phase = "Failed"
        self._publish(reason=reason, message=message)

        def disrupted(pod: Obj) -> None:
            set_condition(pod["status"], "DisruptionTarget", True, *disruption)

        self._store.mutate(PODS, self.namespace, self.name, disrupted)


def _exited(status: Obj, code: int) -> Obj:
    """The terminated state of a container that exited with `code` while the pod was being stopped."""
    started = status["state"].get("running", {}).get("startedAt", now_iso())
    reason = "Completed" if code == 0 else "Error"
    return {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now_iso()}


def _unknown_container() -> Obj:
    """How the kubelet reports a container of a terminated pod that it cannot locate."""
    return {
        "exitCode": 137,
        "reason": "ContainerStatusUnknown",
        "finishedAt": now_iso(),
        "message": "The container could not be located when the pod was terminated",
    }
