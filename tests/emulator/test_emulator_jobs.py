"""batch/v1 Jobs (Indexed and not) and headless Services whose pod names resolve to each pod's own address."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from gpuflow_emulator.process import namespaces_available
from gpuflow_emulator.testing import eventually, python_pod
from kubernetes.client import BatchV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(90)

INDEX = "batch.kubernetes.io/job-completion-index"
# Index 0 serves its own name on port 29555 of its address; index 1 finds it by name, as torchrun's workers find
# MASTER_ADDR, and prints what it got.
PEERS = """
import os, socket, time
index = int(os.environ["JOB_COMPLETION_INDEX"])
print(f"index {index} hostname {socket.gethostname()} env {os.environ['HOSTNAME']}", flush=True)
if index == 0:
    server = socket.create_server(("0.0.0.0", 29555))
    connection, _ = server.accept()
    connection.sendall(socket.gethostname().encode())
    connection.close()
else:
    for _ in range(100):
        try:
            address = socket.gethostbyname("ring-0.ring")
            with socket.create_connection((address, 29555), timeout=2) as connection:
                print(f"peer {address} says {connection.recv(100).decode()}", flush=True)
            break
        except OSError:
            time.sleep(0.1)
"""


@pytest.fixture
def batch_v1(api_client: kubernetes.client.ApiClient) -> BatchV1Api:
    return BatchV1Api(api_client)


def _job(name: str, code: str, *, completions: int = 2, backoff_limit: int = 0, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}
    pod_spec = {"restartPolicy": "Never", "containers": [container], "subdomain": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            **spec,
        },
    }


def _headless(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "publishNotReadyAddresses": True},
    }


def _condition(batch_v1: BatchV1Api, name: str, kind: str) -> Any:
    conditions = batch_v1.read_namespaced_job_status(name, "default").status.conditions or []
    return next((c for c in conditions if c.type == kind and c.status == "True"), None)


def _pods(core_v1: CoreV1Api, job: str) -> list[Any]:
    return list(core_v1.list_namespaced_pod("default", label_selector=f"job-name={job}").items)


@pytest.mark.skipif(not namespaces_available(), reason="pod names resolve through a bound /etc/hosts (unshare)")
def test_indexed_job_pods_find_each_other_by_name_and_the_job_completes(
    batch_v1: BatchV1Api, core_v1: CoreV1Api
) -> None:
    core_v1.create_namespaced_service("default", _headless("ring"))
    batch_v1.create_namespaced_job("default", _job("ring", PEERS))
    complete = eventually(lambda: _condition(batch_v1, "ring", "Complete"), timeout=60, what="Job Complete")
    assert complete.reason == "CompletionsReached"
    status = batch_v1.read_namespaced_job_status("ring", "default").status
    assert (status.succeeded, status.completed_indexes, status.failed) == (2, "0-1", None)
    pods = sorted(_pods(core_v1, "ring"), key=lambda p: p.metadata.labels[INDEX])
    assert [p.metadata.labels[INDEX] for p in pods] == ["0", "1"]
    assert [p.metadata.name.rsplit("-", 1)[0] for p in pods] == ["ring-0", "ring-1"]
    assert [p.spec.hostname for p in pods] == ["ring-0", "ring-1"]
    addresses = [p.status.pod_ip for p in pods]
    assert len(set(addresses)) == 2
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addresses)
    first = core_v1.read_namespaced_pod_log(pods[0].metadata.name, "default")
    second = core_v1.read_namespaced_pod_log(pods[1].metadata.name, "default")
    assert "index 0 hostname ring-0 env ring-0" in first
    assert f"peer {addresses[0]} says ring-0" in second


def test_a_failed_pod_past_the_backoff_limit_fails_the_job_and_stops_the_others(
    batch_v1: BatchV1Api, core_v1: CoreV1Api
) -> None:
    code = "import os, sys, time\nif os.environ['JOB_COMPLETION_INDEX'] == '1': sys.exit(3)\ntime.sleep(600)"
    batch_v1.create_namespaced_job("default", _job("crash", code))
    failed = eventually(lambda: _condition(batch_v1, "crash", "Failed"), timeout=30, what="Job Failed")
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert _condition(batch_v1, "crash", "FailureTarget") is not None
    eventually(lambda: not [p for p in _pods(core_v1, "crash") if p.status.phase == "Running"], what="rank 0 stopped")
    assert batch_v1.read_namespaced_job_status("crash", "default").status.failed == 1


def test_a_failed_index_is_retried_within_the_backoff_limit(batch_v1: BatchV1Api, tmp_path: Path) -> None:
    code = "import os, sys\nsys.exit(0 if os.path.exists('tried') else open('tried', 'w').close() or 1)"
    job = _job("retry", code, completions=1, backoff_limit=1)
    job["spec"]["template"]["spec"]["containers"][0]["workingDir"] = str(tmp_path)  # shared by both attempts
    batch_v1.create_namespaced_job("default", job)
    eventually(lambda: _condition(batch_v1, "retry", "Complete"), timeout=45, what="Job Complete after a retry")
    assert batch_v1.read_namespaced_job_status("retry", "default").status.failed == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"completions": None}, "spec.completions"),
        (
            {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "m", "image": "busybox"}]}}},
            "spec.template.spec.restartPolicy",
        ),
    ],
)
def test_an_invalid_job_is_refused_naming_the_field(batch_v1: BatchV1Api, change: dict[str, Any], field: str) -> None:
    job = _job("bad", "pass")
    job["spec"].update(change)
    with pytest.raises(ApiException) as refused:
        batch_v1.create_namespaced_job("default", job)
    assert refused.value.status == 422
    assert field in str(refused.value.body)


def test_deleting_a_job_in_the_background_deletes_its_pods_and_by_default_orphans_them(
    batch_v1: BatchV1Api, core_v1: CoreV1Api
) -> None:
    for name in ("kept", "swept"):
        batch_v1.create_namespaced_job("default", _job(name, "import time; time.sleep(600)", completions=1))
    for name in ("kept", "swept"):
        eventually(lambda: [p for p in _pods(core_v1, name) if p.status.phase == "Running"], what=f"{name} runs")  # noqa: B023
    batch_v1.delete_namespaced_job("kept", "default")
    batch_v1.delete_namespaced_job("swept", "default", propagation_policy="Background")
    eventually(lambda: not _pods(core_v1, "swept"), what="the swept Job's pod deleted")
    (orphan,) = _pods(core_v1, "kept")
    assert orphan.status.phase == "Running"
    assert not orphan.metadata.owner_references


# Asks for `old.named` every 0.2 s and prints the address, or `unresolved`.
RESOLVER = """
import socket, time
while True:
    try:
        print(socket.gethostbyname("old.named"), flush=True)
    except OSError:
        print("unresolved", flush=True)
    time.sleep(0.2)
"""


@pytest.mark.skipif(not namespaces_available(), reason="pod names resolve through a bound /etc/hosts (unshare)")
def test_a_terminating_pod_keeps_its_name_under_publish_not_ready_addresses_until_it_is_gone(
    core_v1: CoreV1Api,
) -> None:
    """The EndpointSlice controller marks a terminating pod's endpoint ready when its Service publishes not-ready
    addresses (kubernetes staging/src/k8s.io/endpointslice/utils.go, podToEndpoint: `ready :=
    service.Spec.PublishNotReadyAddresses || (serving && !terminating)`), so cluster DNS keeps its name until the pod
    is gone: a new pod of the same hostname can meet the old one."""
    core_v1.create_namespaced_service("default", _headless("named"))
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    old = python_pod("old", stubborn, hostname="old", subdomain="named", terminationGracePeriodSeconds=6)
    old["metadata"]["labels"] = {"app": "named"}
    core_v1.create_namespaced_pod("default", old)
    core_v1.create_namespaced_pod("default", python_pod("peer", RESOLVER, hostname="peer", subdomain="named"))

    def last_answer() -> str:
        log = core_v1.read_namespaced_pod_log("peer", "default", _preload_content=False).data.decode()
        lines = log.split()
        return lines[-1] if lines else ""

    address = eventually(lambda: core_v1.read_namespaced_pod("old", "default").status.pod_ip, what="old's address")
    eventually(lambda: last_answer() == address, what="old.named resolves")
    core_v1.delete_namespaced_pod("old", "default")
    time.sleep(1.5)  # the kubelet rewrites hosts files as pods change; give it a round
    assert core_v1.read_namespaced_pod("old", "default").metadata.deletion_timestamp is not None
    assert last_answer() == address
    eventually(lambda: last_answer() == "unresolved", timeout=30, what="old.named gone with the pod")
