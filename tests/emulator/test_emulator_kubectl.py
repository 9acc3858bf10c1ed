"""kubectl against a running emulator: get, describe and logs of pods."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod
from kubernetes.client import CoreV1Api

pytestmark = pytest.mark.timeout(60)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")
def test_kubectl_gets_describes_and_reads_logs_of_pods(emulator: EmulatorProcess, core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_pod("default", python_pod("shown", "print('hello from kubectl')"))
    eventually(
        lambda: core_v1.read_namespaced_pod("shown", "default").status.phase == "Succeeded",
        what="the pod to succeed",
    )

    def kubectl(*args: str) -> str:
        command = ["kubectl", "--kubeconfig", str(emulator.kubeconfig()), *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout

    table = kubectl("get", "pods")
    assert table.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table.split("\n")[1].split()[:3] == ["shown", "0/1", "Completed"]
    assert kubectl("logs", "shown") == "hello from kubectl\n"
    described = kubectl("describe", "pod", "shown")
    assert "Successfully assigned default/shown to" in described
    assert "Started container main" in described
