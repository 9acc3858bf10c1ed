"""Running the emulator as a subprocess from tests (ours and the cloud half's), and polling with a deadline.

with EmulatorProcess.start(tmp_path, nodes=[{"name": "cpu-0"}]) as emu:
    client = kubernetes.config.new_client_from_config(config_file=str(emu.kubeconfig()))
    emu.add_node("gpu-0", allocatable={"nvidia.com/gpu": "1"})
    emu.remove_node("gpu-0", reason="Preempted")
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from gpuflow_emulator.lifetime import die_with_parent

T = TypeVar("T")
DEFAULT_CLUSTER = "test"
STARTUP_SECONDS = 30
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "include" / "emulator" / "default.yaml"


def eventually(probe: Callable[[], T | None], timeout: float = 15, interval: float = 0.1, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_runtime() -> dict[str, Any]:
    """Images `python:*` run with the interpreter running the tests."""
    return {
        "image_prefix": "python:",
        "commands": {"python": sys.executable, "python3": sys.executable},
        "entrypoint": [sys.executable],
        "env": {"PYTHONUNBUFFERED": "1"},
    }


@dataclass
class EmulatorProcess:
    """An emulator started with `python -m gpuflow_emulator serve` on a free port."""

    url: str
    directory: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls,
        directory: Path,
        nodes: list[dict[str, Any]] | None = None,
        cluster: str = DEFAULT_CLUSTER,
        extra: dict[str, Any] | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> EmulatorProcess:
        """Start on free ports; `extra` is merged into the config (e.g. `clusters`, `clouds`), `serve_args`
        are added to the command line (e.g. `--host`, `--public-host`)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "kubeconfig_dir": "kubeconfigs",
            "work_dir": "pods",
            "state_dir": "state",
            "runtimes": [python_runtime()],
            "clusters": [{"name": cluster, "nodes": nodes or []}],
            **(extra or {}),
        }
        (directory / "emulator.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        with (directory / "emulator.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gpuflow_emulator",
                    "serve",
                    "--config",
                    str(directory / "emulator.yaml"),
                    "--port",
                    str(port),
                    *serve_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        emulator = cls(f"http://127.0.0.1:{port}", directory, process)
        eventually(emulator.healthy, timeout=STARTUP_SECONDS, what="the emulator to answer /healthz")
        return emulator

    @classmethod
    def start_clouds(
        cls, directory: Path, scenario: dict[str, Any], auth: dict[str, Any] | None = None
    ) -> EmulatorProcess:
        """The default config's six clusters, image sizes, device plugins and `auth` (or `auth`, e.g. a shorter
        token lifetime), with all three cloud APIs on free ports, under `scenario`."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        default = yaml.safe_load(DEFAULT_CONFIG.read_text())
        clouds = {
            "aws_port": free_port(),
            "gcp_port": free_port(),
            "azure_port": free_port(),
            "scenario": "scenario.yaml",
        }
        shared = {key: default[key] for key in ("clusters", "images", "device_plugins")}
        return cls.start(directory, extra={**shared, "clouds": clouds, "auth": auth or default["auth"]})

    def clouds(self) -> dict[str, str]:
        """{aws, gcp, azure: base URL, azure_ca: path of the CA PEM to trust for azure}."""
        return dict(self._admin("GET", "clouds"))

    def pools(self) -> list[dict[str, Any]]:
        return list(self._admin("GET", "pools"))

    def labelled(self, label: str, value: str, namespace: str = "default") -> list[str]:
        """Every pool, node, pod, service, secret and deployment on any cluster carrying ``label=value``."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        found = [f"pool/{p['name']}" for p in self.pools() if p.get("labels", {}).get(label) == value]
        selector = f"{label}={value}"
        for kubeconfig in sorted((self.directory / "kubeconfigs").glob("*.yaml")):
            api = k8s_config.new_client_from_config(str(kubeconfig))
            core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
            listings = {
                "node": core.list_node(label_selector=selector),
                "pod": core.list_namespaced_pod(namespace, label_selector=selector),
                "service": core.list_namespaced_service(namespace, label_selector=selector),
                "secret": core.list_namespaced_secret(namespace, label_selector=selector),
                "deployment": apps.list_namespaced_deployment(namespace, label_selector=selector),
            }
            found += [f"{kind}/{item.metadata.name}" for kind, listing in listings.items() for item in listing.items]
        return found

    def calls(self, cloud: str) -> list[dict[str, Any]]:
        return list(self._admin("GET", f"clouds/{cloud}/calls"))

    def preempt(self, cloud: str, cluster: str, pool: str, nodes: list[str] | None = None) -> list[str]:
        """Preempt every node of a spot pool now (or the ``nodes`` given), as its cloud does; returns the nodes."""
        body = {} if nodes is None else {"nodes": nodes}
        return list(self._admin("POST", f"pools/{cloud}/{cluster}/{pool}/preempt", body)["preempted"])

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"emulator exited with {self.process.returncode}: {self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return (self.directory / "emulator.log").read_text()

    def kubeconfig(self, cluster: str = DEFAULT_CLUSTER) -> Path:
        return self.directory / "kubeconfigs" / f"{cluster}.yaml"

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
        cluster: str = DEFAULT_CLUSTER,
        devices: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {"name": name, "labels": labels, "taints": taints, "allocatable": allocatable, "devices": devices}
        return dict(self._admin("POST", f"clusters/{cluster}/nodes", body))

    def remove_node(self, name: str, reason: str = "NodeLost", cluster: str = DEFAULT_CLUSTER) -> None:
        self._admin("DELETE", f"clusters/{cluster}/nodes/{name}?reason={reason}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a supervisor would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def processes_with_marker(emulator_pid: int) -> list[int]:
    """Pids of live processes the emulator `emulator_pid` started (they carry GPUFLOW_EMULATOR_PID)."""
    marker = f"GPUFLOW_EMULATOR_PID={emulator_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def python_pod(name: str, code: str, *, restart_policy: str = "Never", **spec: Any) -> dict[str, Any]:
    """A pod manifest whose single container `main` runs `python -c code` (image python:3.11)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}],
            **spec,
        },
    }
