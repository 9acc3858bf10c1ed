"""Our endpoint manifests deployed into the emulator, with the container swapped for the OpenAI test double:
the probes gate readiness, the Service routes, and smoke test and benchmark go through the API-server proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from gpuflow_emulator.testing import EmulatorProcess, eventually
from openai_double import MODEL

from gpuflow.clouds.aws import _kube_config as eks_kube_config
from gpuflow.core.clusters import Cluster
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.placement import placement
from gpuflow.kube.serving import EndpointSpec, ModelDownloader, ProbeTiming, endpoint_manifests
from gpuflow.serving.benchmark import BenchmarkConfig, run_benchmark
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.smoke import smoke_test

pytestmark = pytest.mark.timeout(90)

DOUBLE = Path(__file__).with_name("openai_double.py")
GPU_NODE = {
    "name": "gpu-0",
    "labels": {"cloud.google.com/gke-nodepool": "gpu-pool", "cloud.google.com/gke-accelerator": "nvidia-l4"},
    "taints": [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"},
    ],
    "allocatable": {"nvidia.com/gpu": "2"},
}


# Fills the model cache volume as the rclone download would (the double, like vLLM, needs a config.json there).
FAKE_DOWNLOAD = (
    "import os, pathlib; weights = pathlib.Path(os.environ['MODEL_DIR']); weights.mkdir(parents=True, exist_ok=True); "
    "(weights / 'config.json').write_text('{}'); print('copy', os.environ['MODEL_URI'])"
)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with EmulatorProcess.start(tmp_path / "emulator", nodes=[{"name": "cpu-0"}, GPU_NODE]) as running:
        yield running


def _spec() -> EndpointSpec:
    """TP=2 on a spot L4 pool, weights from a URI: every optional part of the manifests is present."""
    return EndpointSpec(
        name="tiny",
        namespace="default",
        image="python:3.11",
        command=("python", str(DOUBLE)),
        options=VllmOptions("gs://bucket/tiny", MODEL, max_model_len=256, tensor_parallel_size=2),
        placement=placement("gcp", "gpu-pool", "L4", 2, "spot"),
        labels={"gpuflow.io/managed": "true"},
        downloader=ModelDownloader("python:3.11", ("python", "-c", FAKE_DOWNLOAD)),
        probes=ProbeTiming(startup_period_s=1, startup_budget_s=30, readiness_period_s=1, liveness_period_s=1),
    )


def _apply(api: kubernetes.client.ApiClient, manifests: list[dict[str, Any]]) -> None:
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    create = {
        "Secret": core.create_namespaced_secret,
        "Service": core.create_namespaced_service,
        "Deployment": apps.create_namespaced_deployment,
    }
    for manifest in manifests:
        create[manifest["kind"]](manifest["metadata"]["namespace"], manifest)


def _available(apps: kubernetes.client.AppsV1Api) -> bool:
    status = apps.read_namespaced_deployment_status("tiny", "default").status
    return bool(status.available_replicas == 1)


def test_endpoint_serves_smoke_test_and_benchmark_through_the_api_server_proxy(emulator: EmulatorProcess) -> None:
    kubeconfig = yaml.safe_load(emulator.kubeconfig().read_text())
    api = kubernetes.config.new_client_from_config_dict(kubeconfig)
    _apply(api, endpoint_manifests(_spec(), hf_token="hf_test_token"))

    apps = kubernetes.client.AppsV1Api(api)
    eventually(lambda: _available(apps), timeout=45, what=f"the endpoint to become available\n{emulator.log()}")
    (pod,) = (
        kubernetes.client.CoreV1Api(api)
        .list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=tiny")
        .items
    )
    assert pod.spec.node_name == "gpu-0"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0

    with OpenAIClient(service_proxy_endpoint(kubeconfig, "default", "tiny", "http")) as client:
        result = smoke_test(client, MODEL, max_tokens=4)
        config = BenchmarkConfig(MODEL, num_prompts=5, request_rate=50.0, input_len=6, output_len=4)
        report = run_benchmark(client, config)

    assert result.completion_text == "w0 w1 w2 w3"
    assert (report.completed, report.failed, report.total_output_tokens) == (5, 0, 20)
    api.close()


EKS_IDENTITY = ("AKIAGPUFLOWEMULATOR", "arn:aws:iam::123456789012:user/gpuflow")
TOKEN_LIFETIME_S = 3


@pytest.fixture
def short_lived_eks(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """One EKS cluster whose API server refuses tokens TOKEN_LIFETIME_S after they were signed."""
    cloud = {"provider": "aws", "region": "us-east-1", "access_entries": [EKS_IDENTITY[1]]}
    extra = {
        "clusters": [{"name": "gpuflow-use1", "nodes": [{"name": "cpu-0"}, GPU_NODE], "cloud": cloud}],
        "auth": {"token_lifetime_seconds": TOKEN_LIFETIME_S, "aws_identities": dict([EKS_IDENTITY])},
    }
    with EmulatorProcess.start(tmp_path / "emulator", extra=extra) as running:
        yield running


def test_the_proxy_client_outlives_an_expired_eks_token(short_lived_eks: EmulatorProcess) -> None:
    cluster = Cluster("aws", "us-east-1", "gpuflow-use1", "gpuflow_aws", {})
    keys = {"AWS_ACCESS_KEY_ID": EKS_IDENTITY[0], "AWS_SECRET_ACCESS_KEY": "emulator", "AWS_SESSION_TOKEN": ""}
    kubeconfig = eks_kube_config(cluster, f"{short_lived_eks.url}/clusters/gpuflow-use1", "", keys)
    api = kubernetes.config.new_client_from_config_dict(kubeconfig)
    _apply(api, endpoint_manifests(_spec(), hf_token="hf_test_token"))
    apps = kubernetes.client.AppsV1Api(api)
    eventually(lambda: _available(apps), timeout=45, what=f"the endpoint to become available\n{short_lived_eks.log()}")

    with OpenAIClient(service_proxy_endpoint(kubeconfig, "default", "tiny", "http")) as client:
        assert client.models() == [MODEL]
        time.sleep(TOKEN_LIFETIME_S + 1.5)  # the token the client holds is now refused (its exec expiry is later)
        assert client.models() == [MODEL]
    api.close()
