"""Deployments with a readiness probe on a small HTTP server: availability, service proxy, rolling update."""

from __future__ import annotations

from typing import Any

import pytest
from gpuflow_emulator.testing import eventually
from kubernetes.client import AppsV1Api, CoreV1Api

pytestmark = pytest.mark.timeout(60)

# A container learns the local port of its containerPort 8000 from GPUFLOW_EMULATOR_PORT_8000.
SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['VERSION']} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["GPUFLOW_EMULATOR_PORT_8000"])), Handler).serve_forever()
"""


def _deployment(version: str) -> dict[str, Any]:
    container = {
        "name": "server",
        "image": "python:3.11",
        "command": ["python", "-c", SERVER],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/v1/models", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8000},
            "periodSeconds": 1,
            "failureThreshold": 5,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
        },
    }


SERVICE = {
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
}


def _available(apps_v1: AppsV1Api) -> bool:
    status = apps_v1.read_namespaced_deployment_status("web", "default").status
    conditions = {c.type: c.status for c in status.conditions or []}
    return bool(status.available_replicas == 1 and conditions.get("Available") == "True")


def _web_pods(core_v1: CoreV1Api) -> list[Any]:
    return list(core_v1.list_namespaced_pod("default", label_selector="app=web").items)


def _through_proxy(core_v1: CoreV1Api) -> str:
    response = core_v1.connect_get_namespaced_service_proxy_with_path(
        "web:80", "default", "v1/models", _preload_content=False
    )
    return str(response.data.decode())


def test_deployment_becomes_available_and_answers_through_the_service_proxy(
    apps_v1: AppsV1Api, core_v1: CoreV1Api
) -> None:
    apps_v1.create_namespaced_deployment("default", _deployment("v1"))
    core_v1.create_namespaced_service("default", SERVICE)

    eventually(lambda: _available(apps_v1), what="the deployment to become available")

    assert _through_proxy(core_v1) == "v1 /v1/models"
    (pod,) = _web_pods(core_v1)
    response = core_v1.connect_get_namespaced_pod_proxy_with_path(
        f"{pod.metadata.name}:8000", "default", "x", _preload_content=False
    )
    assert response.data == b"v1 /x"


def test_spec_change_rolls_the_pods_to_the_new_template(apps_v1: AppsV1Api, core_v1: CoreV1Api) -> None:
    apps_v1.create_namespaced_deployment("default", _deployment("v1"))
    core_v1.create_namespaced_service("default", SERVICE)
    eventually(lambda: _available(apps_v1), what="the first version to become available")
    (first,) = _web_pods(core_v1)

    apps_v1.replace_namespaced_deployment("web", "default", _deployment("v2"))

    eventually(lambda: _through_proxy(core_v1) == "v2 /v1/models", what="the proxy to reach v2")
    eventually(lambda: len(_web_pods(core_v1)) == 1, what="the old pod to go")
    assert _web_pods(core_v1)[0].metadata.name != first.metadata.name
    status = apps_v1.read_namespaced_deployment("web", "default").status
    assert (status.updated_replicas, status.observed_generation) == (1, 2)


def test_service_proxy_without_ready_endpoints_is_503(core_v1: CoreV1Api) -> None:
    core_v1.create_namespaced_service("default", SERVICE)

    with pytest.raises(Exception, match="503") as failure:
        _through_proxy(core_v1)

    assert 'no endpoints available for service \\"web\\"' in str(failure.value)
