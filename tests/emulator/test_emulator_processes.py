"""Containers as local processes: env and secrets, init containers, restarts, deletion, no leaks."""

from __future__ import annotations

import signal
from pathlib import Path

import kubernetes
import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually, processes_with_marker, python_pod
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


def _phase(core_v1: CoreV1Api, name: str) -> str:
    return str(core_v1.read_namespaced_pod(name, "default").status.phase)


def _log(core_v1: CoreV1Api, name: str, container: str = "main") -> str:
    """The container's log; empty while it has not started (the API answers 400 "waiting to start" then)."""
    try:
        response = core_v1.read_namespaced_pod_log(name, "default", container=container, _preload_content=False)
    except ApiException as error:
        if error.status == 400 and "waiting to start" in str(error.body):
            return ""
        raise
    return str(response.data.decode())


def test_init_container_runs_first_and_env_comes_from_secrets_and_values(core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_secret("default", {"metadata": {"name": "hf"}, "stringData": {"token": "s3cret"}})
    manifest = python_pod(
        "env",
        "import os; env = os.environ\nprint(open('init.txt').read(), env['HF_TOKEN'], env['GREETING'], os.getcwd())",
        initContainers=[
            {
                "name": "prepare",
                "image": "python:3.11",
                "workingDir": "/data",
                "command": ["python", "-c", "open('init.txt', 'w').write('prepared')"],
            }
        ],
    )
    manifest["spec"]["containers"][0].update(
        workingDir="/data",
        env=[
            {"name": "NAME", "value": "world"},
            {"name": "GREETING", "value": "hello-$(NAME)"},
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
        ],
    )
    core_v1.create_namespaced_pod("default", manifest)

    eventually(lambda: _phase(core_v1, "env") == "Succeeded", what="the pod to succeed")

    prepared, token, greeting, cwd = _log(core_v1, "env").split()
    assert (prepared, token, greeting) == ("prepared", "s3cret", "hello-world")
    assert cwd.endswith("/data")
    init_status = core_v1.read_namespaced_pod("env", "default").status.init_container_statuses[0]
    assert init_status.state.terminated.reason == "Completed"


def test_container_failing_once_is_restarted_under_on_failure(core_v1: CoreV1Api) -> None:
    code = "import os, sys\nfirst = not os.path.exists('ran')\nopen('ran', 'w').close()\nsys.exit(int(first))"
    core_v1.create_namespaced_pod("default", python_pod("flaky", code, restart_policy="OnFailure"))

    eventually(lambda: _phase(core_v1, "flaky") == "Succeeded", what="the retried pod to succeed")

    status = core_v1.read_namespaced_pod("flaky", "default").status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1


def test_image_without_a_runtime_waits_in_err_image_pull(core_v1: CoreV1Api) -> None:
    manifest = python_pod("unknown-image", "print(1)")
    manifest["spec"]["containers"][0]["image"] = "nvcr.io/nvidia/pytorch:24.01"
    core_v1.create_namespaced_pod("default", manifest)

    def waiting_reason() -> str | None:
        statuses = core_v1.read_namespaced_pod("unknown-image", "default").status.container_statuses or []
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    assert eventually(lambda: waiting_reason() == "ErrImagePull", what="ErrImagePull")


def test_deleting_a_pod_sends_sigterm_then_sigkill_after_the_grace_period(core_v1: CoreV1Api, tmp_path: Path) -> None:
    marker = tmp_path / "got-sigterm"
    code = (
        "import signal, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: open({str(marker)!r}, 'w').close())\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "while True: time.sleep(0.1)"
    )
    core_v1.create_namespaced_pod("default", python_pod("stubborn", code))
    eventually(lambda: "ignoring" in _log(core_v1, "stubborn"), what="the signal handler to be installed")

    deleted = core_v1.delete_namespaced_pod("stubborn", "default", grace_period_seconds=1)

    assert deleted.metadata.deletion_timestamp is not None
    eventually(lambda: core_v1.list_namespaced_pod("default").items == [], what="the pod to be gone")
    assert marker.exists()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopping_the_emulator_ends_every_process_it_started(stop: signal.Signals, tmp_path: Path) -> None:
    """A supervisor's SIGTERM, or the SIGHUP of the terminal it shares, ends it and every pod process."""
    emulator = EmulatorProcess.start(tmp_path / "emulator", nodes=[{"name": "cpu-0"}])
    spawner = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    with emulator:
        core_v1 = CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig())))
        for name in ("one", "two"):
            core_v1.create_namespaced_pod("default", python_pod(name, spawner))
        eventually(lambda: len(processes_with_marker(emulator.process.pid)) == 4, what="2 pods with 2 processes each")

        emulator.process.send_signal(stop)
        exit_code = emulator.process.wait(30)

    assert exit_code == 0
    assert processes_with_marker(emulator.process.pid) == []
    assert "stopped" in emulator.log()


# Answers a POST {"path": P} with the text of the file at P, as vLLM opens the `lora_path` a client sends it.
FILE_SERVER = """
import http.server, json, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["path"]
        try:
            body, status = open(asked, "rb").read(), 200
        except OSError as error:
            body, status = str(error).encode(), 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["GPUFLOW_EMULATOR_PORT_8000"])), Handler).serve_forever()
"""


def test_a_path_of_the_pods_volume_sent_in_a_request_opens_the_same_file(
    core_v1: CoreV1Api, api_client: kubernetes.client.ApiClient
) -> None:
    """On a cluster a volume is at its mountPath inside the pod, so a client may name a file there (vLLM's
    `/v1/load_lora_adapter` takes the adapter's `lora_path`); here the container is a local process, so the proxy
    gives it the local directory standing in for the volume, as command, args and env get it."""
    write = "import sys, pathlib; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(); p.write_text('adapter config')"
    pod = python_pod(
        "files",
        FILE_SERVER,
        restart_policy="Always",
        volumes=[{"name": "models", "emptyDir": {}}],
        initContainers=[
            {
                "name": "put",
                "image": "python:3.11",
                "command": ["python", "-c", write, "/models/adapters/config.json"],
                "volumeMounts": [{"name": "models", "mountPath": "/models"}],
            }
        ],
    )
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "models", "mountPath": "/models"}]
    core_v1.create_namespaced_pod("default", pod)
    eventually(lambda: _phase(core_v1, "files") == "Running", what="the file server running")

    def ask(path: str) -> tuple[int, bytes]:
        try:
            response = api_client.call_api(
                "/api/v1/namespaces/default/pods/files:8000/proxy/read",
                "POST",
                header_params={"Content-Type": "application/json"},
                body={"path": path},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
        except ApiException as error:
            return error.status, error.body
        return response.status, response.data

    assert eventually(lambda: ask("/models/adapters/config.json") == (200, b"adapter config"), what="the file")
    status, _ = ask("/elsewhere/config.json")
    assert status == 404
