"""An endpoint with an adapters URI in the emulator: the sync sidecar (Debian's rclone, under the image's shell
loop) copies an adapter published to the cluster's bucket after the pod started into the shared cache, and a load
through the API-server proxy succeeds once it is there; no new pod. The vLLM container is the OpenAI double, which
answers the adapter routes as vLLM does (tests/ml prove those against real vLLM)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from gpuflow_emulator.stores import StoresConfig, pod_env
from gpuflow_emulator.testing import DEFAULT_CONFIG, EmulatorProcess, eventually, python_runtime
from openai_double import MODEL

from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.placement import placement
from gpuflow.kube.serving import ADAPTERS_DIR, EndpointSpec, ModelDownloader, ProbeTiming, endpoint_manifests
from gpuflow.serving.client import AdapterError, OpenAIClient, service_proxy_endpoint

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is missing: `make stores` installs Debian's"),
]

DOUBLE = Path(__file__).with_name("openai_double.py")
CLUSTER = "gpuflow-usc1"
GPU_NODE = {
    "name": "gpu-0",
    "labels": {"cloud.google.com/gke-nodepool": "gpu-pool", "cloud.google.com/gke-accelerator": "nvidia-l4"},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    "allocatable": {"nvidia.com/gpu": "1"},
}
FAKE_DOWNLOAD = (
    "import os, pathlib; weights = pathlib.Path(os.environ['MODEL_DIR']); weights.mkdir(parents=True, exist_ok=True); "
    "(weights / 'config.json').write_text('{}')"
)


def _cluster() -> dict[str, Any]:
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    return next(c for c in default["clusters"] if c["name"] == CLUSTER)


@pytest.fixture
def emulator(tmp_path: Path, object_stores: StoresConfig) -> Iterator[EmulatorProcess]:
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    rclone = next(r for r in default["runtimes"] if r["image_prefix"] == "rclone/rclone:")
    extra = {
        "clusters": [{**_cluster(), "nodes": [{"name": "cpu-0"}, GPU_NODE]}],
        "runtimes": [python_runtime(), rclone],
        "object_stores": object_stores.to_json(),
    }
    with EmulatorProcess.start(tmp_path / "emulator", extra=extra) as running:
        yield running


def _spec(adapters_uri: str) -> EndpointSpec:
    options = VllmOptions("gs://bucket/tiny", MODEL, max_model_len=256, enable_lora=True, max_lora_rank=8)
    return EndpointSpec(
        name="tiny",
        namespace="default",
        image="python:3.11",
        command=("python", str(DOUBLE)),
        options=options,
        placement=placement("gcp", "gpu-pool", "L4", 1, "spot"),
        labels={"gpuflow.io/managed": "true"},
        downloader=ModelDownloader("python:3.11", ("python", "-c", FAKE_DOWNLOAD)),
        probes=ProbeTiming(startup_period_s=1, startup_budget_s=30, readiness_period_s=1, liveness_period_s=1),
        adapters_uri=adapters_uri,
        adapter_sync_period_s=1,
    )


def _publish(adapter: Path, uri: str, object_stores: StoresConfig) -> None:
    """Upload as the trainer would, with rclone pointed at the emulator's GCS."""
    cloud = _cluster()["cloud"]
    env = {"PATH": "/usr/bin:/bin", **pod_env("gcp", cloud["region"], cloud["bucket"], object_stores)}
    target = ":gcs:" + uri.removeprefix("gs://")
    subprocess.run(["rclone", "copy", str(adapter), target], env=env, check=True, capture_output=True, timeout=60)


def test_an_adapter_published_after_the_pod_started_is_synced_in_and_loaded_without_a_new_pod(
    emulator: EmulatorProcess, object_stores: StoresConfig, tmp_path: Path
) -> None:
    adapters_uri = f"{_cluster()['cloud']['bucket']}/runs/r1/adapters"
    kubeconfig = yaml.safe_load(emulator.kubeconfig(CLUSTER).read_text())
    api = kubernetes.config.new_client_from_config_dict(kubeconfig)
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    for manifest in endpoint_manifests(_spec(adapters_uri)):
        if manifest["kind"] == "Deployment":
            apps.create_namespaced_deployment("default", manifest)
        else:
            core.create_namespaced_service("default", manifest)
    eventually(
        lambda: apps.read_namespaced_deployment_status("tiny", "default").status.available_replicas == 1,
        timeout=45,
        what=f"the endpoint to become available\n{emulator.log()}",
    )
    (before,) = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=tiny").items

    with OpenAIClient(service_proxy_endpoint(kubeconfig, "default", "tiny", "http")) as client:
        with pytest.raises(AdapterError) as missing:
            client.load_lora_adapter("tiny-lora", f"{ADAPTERS_DIR}/tiny-lora")
        assert (missing.value.status, missing.value.kind) == (404, "NotFoundError")

        adapter = tmp_path / "tiny-lora"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
        _publish(adapter, f"{adapters_uri}/tiny-lora", object_stores)
        client.wait_and_load_lora_adapter("tiny-lora", f"{ADAPTERS_DIR}/tiny-lora", timeout_s=30, period_s=0.5)

        assert client.models() == [MODEL, "tiny-lora"]
        assert client.complete("tiny-lora", "a b", max_tokens=2).text == "w0 w1"
        client.unload_lora_adapter("tiny-lora")
        assert client.models() == [MODEL]

    (after,) = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=tiny").items
    assert after.metadata.uid == before.metadata.uid
    restarts = {status.name: status.restart_count for status in after.status.container_statuses}
    assert restarts == {"vllm": 0, "sync-adapters": 0}
    api.close()
