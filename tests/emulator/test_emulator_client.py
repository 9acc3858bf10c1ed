"""The kubernetes and kubernetes_asyncio clients against the emulator: CRUD, selectors, errors, logs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest
from gpuflow_emulator.testing import EmulatorProcess, eventually, python_pod
from kubernetes.client import ApiException, CoreV1Api

pytestmark = pytest.mark.timeout(60)


def _phase(core_v1: CoreV1Api, name: str) -> str:
    return str(core_v1.read_namespaced_pod(name, "default").status.phase)


def test_pod_is_created_read_listed_and_deleted_in_wire_format(core_v1: CoreV1Api) -> None:
    created = core_v1.create_namespaced_pod("default", python_pod("crud", "print(1)"))

    read = core_v1.read_namespaced_pod("crud", "default")
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version
    assert read.metadata.creation_timestamp
    assert read.metadata.labels == {"app": "crud"}
    assert read.spec.restart_policy == "Never"
    assert [p.metadata.name for p in core_v1.list_namespaced_pod("default").items] == ["crud"]
    eventually(lambda: _phase(core_v1, "crud") == "Succeeded", what="pod crud to succeed")
    core_v1.delete_namespaced_pod("crud", "default")
    assert core_v1.list_namespaced_pod("default").items == []


def test_list_filters_by_label_and_field_selectors(core_v1: CoreV1Api) -> None:
    for name, tier in (("a", "gpu"), ("b", "cpu"), ("c", "gpu")):
        manifest = python_pod(name, "print(1)")
        manifest["metadata"]["labels"] = {"tier": tier, "checked": "True" if name == "c" else "False"}
        core_v1.create_namespaced_pod("default", manifest)

    def names(**selectors: str) -> list[str]:
        return [p.metadata.name for p in core_v1.list_namespaced_pod("default", **selectors).items]

    assert names(label_selector="tier=gpu") == ["a", "c"]
    assert names(label_selector="tier=gpu,checked!=True,!airflow-worker") == ["a"]
    assert names(label_selector="tier in (cpu, tpu)") == ["b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    eventually(lambda: names(field_selector="status.phase=Succeeded") == ["a", "b", "c"], what="all pods to succeed")


def test_errors_are_status_objects_with_real_codes(core_v1: CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core_v1.read_namespaced_pod("nope", "default")
    status = json.loads(missing.value.body)
    assert (missing.value.status, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert status["message"] == 'pods "nope" not found'

    core_v1.create_namespaced_pod("default", python_pod("twice", "print(1)"))
    with pytest.raises(ApiException) as duplicate:
        core_v1.create_namespaced_pod("default", python_pod("twice", "print(1)"))
    assert (duplicate.value.status, json.loads(duplicate.value.body)["reason"]) == (409, "AlreadyExists")

    with pytest.raises(ApiException) as invalid:
        core_v1.create_namespaced_pod("default", {"metadata": {"name": "Bad_Name"}, "spec": {"containers": []}})
    body = json.loads(invalid.value.body)
    assert (invalid.value.status, body["reason"]) == (422, "Invalid")
    assert {c["field"] for c in body["details"]["causes"]} == {"metadata.name", "spec.containers"}

    with pytest.raises(ApiException) as no_namespace:
        core_v1.create_namespaced_pod("missing", python_pod("x", "print(1)"))
    assert json.loads(no_namespace.value.body)["message"] == 'namespaces "missing" not found'


def test_patch_merges_labels(core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_pod("default", python_pod("patched", "print(1)"))

    core_v1.patch_namespaced_pod("patched", "default", {"metadata": {"labels": {"already_checked": "True"}}})

    assert core_v1.read_namespaced_pod("patched", "default").metadata.labels == {
        "app": "patched",
        "already_checked": "True",
    }


def test_secrets_configmaps_and_services_round_trip(core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_secret("default", {"metadata": {"name": "hf"}, "stringData": {"token": "s3cret"}})
    core_v1.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    core_v1.create_namespaced_service(
        "default", {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    )

    assert core_v1.read_namespaced_secret("hf", "default").data == {"token": "czNjcmV0"}
    assert core_v1.read_namespaced_config_map("cfg", "default").data == {"k": "v"}
    assert core_v1.read_namespaced_service("svc", "default").spec.ports[0].target_port == 80
    core_v1.delete_namespaced_service("svc", "default")
    with pytest.raises(ApiException) as gone:
        core_v1.read_namespaced_service("svc", "default")
    assert gone.value.status == 404


def test_log_follow_streams_lines_until_the_container_exits(core_v1: CoreV1Api) -> None:
    code = "import time\nfor i in range(3):\n    print(f'line {i}', flush=True)\n    time.sleep(0.3)"
    core_v1.create_namespaced_pod("default", python_pod("talker", code))
    eventually(lambda: _phase(core_v1, "talker") != "Pending", what="the container to start")

    stream = core_v1.read_namespaced_pod_log("talker", "default", follow=True, _preload_content=False)
    lines = [line.decode() for line in stream.stream() for line in line.splitlines()]

    assert lines == ["line 0", "line 1", "line 2"]

    def read(**query: object) -> str:
        response = core_v1.read_namespaced_pod_log("talker", "default", _preload_content=False, **query)
        return str(response.data.decode())

    assert read(tail_lines=1) == "line 2\n"
    assert read(timestamps=True).splitlines()[0].endswith("Z line 0")
    assert read(since_seconds=3600).count("line") == 3


def test_async_client_creates_watches_events_and_reads_logs(emulator: EmulatorProcess) -> None:
    async def scenario() -> tuple[str, list[str], str]:
        await kubernetes_asyncio.config.load_kube_config(config_file=str(emulator.kubeconfig()))
        async with kubernetes_asyncio.client.ApiClient() as client:
            core = kubernetes_asyncio.client.CoreV1Api(client)
            manifest: Any = python_pod("async", "print('from async')")
            await core.create_namespaced_pod("default", manifest)
            reasons = []
            watch = kubernetes_asyncio.watch.Watch()
            async for event in watch.stream(
                core.list_namespaced_event,
                "default",
                field_selector="involvedObject.name=async",
                timeout_seconds=10,
            ):
                reasons.append(event["object"].reason)
                if event["object"].reason == "Started":
                    watch.stop()
            while (await core.read_namespaced_pod("async", "default")).status.phase != "Succeeded":
                await asyncio.sleep(0.1)
            logs = await core.read_namespaced_pod_log("async", "default")
            with pytest.raises(kubernetes_asyncio.client.ApiException) as missing:
                await core.read_namespaced_pod("nope", "default")
            return logs, reasons, str(missing.value.status)

    logs, reasons, missing_status = asyncio.run(scenario())

    assert logs == "from async\n"
    assert reasons[0] == "Scheduled"
    assert "Started" in reasons
    assert missing_status == "404"


def test_discovery_lists_the_served_resources(api_client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreApi(api_client).get_api_versions()
    apps = kubernetes.client.AppsV1Api(api_client).get_api_resources()

    assert core.versions == ["v1"]
    assert "deployments" in [r.name for r in apps.resources]
    assert kubernetes.client.VersionApi(api_client).get_code().major == "1"
