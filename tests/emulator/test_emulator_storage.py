"""Pods and the clouds' object storage: pods see none of the Airflow worker's files, and each cluster's pods reach
their own cloud's store (moto's S3, fake-gcs-server, Azurite) with fsspec and with rclone (emulator/README.md,
"Object storage"). The stores are the session's (``object_stores`` in tests/conftest.py), started once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from gpuflow_emulator.process import namespaces_available
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import DEFAULT_CONFIG, EmulatorProcess, eventually, python_pod, python_runtime

from tests.emulator.conftest import kube

ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
CLUSTERS = ("gpuflow-use1", "gpuflow-usc1", "gpuflow-eastus")  # one per cloud
TRAIN_IMAGE = "ghcr.io/gpuflow/train:0.1.0"  # the training runtime: .venv-ml, where s3fs, gcsfs and adlfs are
WRITE = (
    "import fsspec, os, sys; uri = sys.argv[1]; "
    "fs, path = fsspec.core.url_to_fs(uri.replace('az://devstoreaccount1/', 'az://')); "
    "fs.pipe_file(path + '/probe/hello.txt', ('hello from ' + uri).encode()); print('wrote', uri)"
)

# rclone takes credentials from the pod's environment, as gpuflow's downloader tells it to.
ENV_AUTH = [{"name": f"RCLONE_{backend}_ENV_AUTH", "value": "true"} for backend in ("S3", "GCS", "AZUREBLOB")]


def _phase(core: kubernetes.client.CoreV1Api, name: str) -> str | None:
    phase = core.read_namespaced_pod(name, "default").status.phase
    return str(phase) if phase in ("Succeeded", "Failed") else None


def _log(core: kubernetes.client.CoreV1Api, name: str, container: str | None = None) -> str:
    return str(core.read_namespaced_pod_log(name, "default", container=container))


@pytest.fixture(scope="module")
def storage_emulator(
    tmp_path_factory: pytest.TempPathFactory, object_stores: StoresConfig
) -> Iterator[EmulatorProcess]:
    if not ML_PYTHON.exists():
        pytest.skip("build the ML environment with `make ml-env` (the training image's runtime)")
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    clusters = [{**c, "nodes": [{"name": "cpu-0"}]} for c in default["clusters"] if c["name"] in CLUSTERS]
    runtimes = [r for r in default["runtimes"] if r["image_prefix"] in (TRAIN_IMAGE[:-5], "rclone/rclone:")]
    extra = {"clusters": clusters, "runtimes": runtimes, "object_stores": object_stores.to_json()}
    with EmulatorProcess.start(tmp_path_factory.mktemp("storage"), extra=extra) as running:
        yield running


def _buckets() -> dict[str, str]:
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    return {c["name"]: c["cloud"]["bucket"] for c in default["clusters"] if c["name"] in CLUSTERS}


def _downloader(name: str, source: list[str]) -> dict[str, Any]:
    """rclone copies into an emptyDir in an init container; the main container reads the copy from it."""
    read = "import os; print(open(os.environ['MODEL_DIR'] + '/hello.txt').read())"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "download",
                    "image": "rclone/rclone:1.68.2",
                    "command": ["rclone", "copy", *source, "$(MODEL_DIR)"],
                    "env": [{"name": "MODEL_DIR", "value": "/models/weights"}, *ENV_AUTH],
                    "volumeMounts": [{"name": "cache", "mountPath": "/models"}],
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": TRAIN_IMAGE,
                    "command": ["python", "-c", read],
                    "env": [{"name": "MODEL_DIR", "value": "/models/weights"}],
                    "volumeMounts": [{"name": "cache", "mountPath": "/models"}],
                }
            ],
        },
    }


def _rclone_source(bucket: str) -> list[str]:
    """How gpuflow's downloader names a bucket's directory to rclone (gpuflow.kube.serving.rclone_downloader)."""
    scheme, rest = bucket.split("://")
    if scheme == "az":
        account, container = rest.split("/", 1)
        return ["--azureblob-account", account, f":azureblob:{container}/probe"]
    return [f":{'s3' if scheme == 's3' else 'gcs'}:{rest}/probe"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_pod_writes_its_clouds_bucket_with_fsspec_and_another_downloads_it_with_rclone(
    storage_emulator: EmulatorProcess, cluster: str
) -> None:
    core, bucket = kube(storage_emulator, cluster), _buckets()[cluster]
    writer = {"name": "main", "image": TRAIN_IMAGE, "command": ["python", "-c", WRITE, bucket]}
    core.create_namespaced_pod(
        "default", {**python_pod("writer", ""), "spec": {"restartPolicy": "Never", "containers": [writer]}}
    )
    assert eventually(lambda: _phase(core, "writer"), timeout=60, what="the writer") == "Succeeded", _log(
        core, "writer"
    )
    core.create_namespaced_pod("default", _downloader("reader", _rclone_source(bucket)))
    phase = eventually(lambda: _phase(core, "reader"), timeout=60, what="the reader")
    assert phase == "Succeeded", _log(core, "reader", "download")
    assert f"hello from {bucket}" in _log(core, "reader", "main")


@pytest.mark.skipif(not namespaces_available(), reason="this kernel forbids unprivileged user namespaces (unshare)")
def test_a_pod_cannot_read_what_the_airflow_worker_wrote(tmp_path: Path) -> None:
    """A model the worker wrote into its artifacts folder is not on a cloud node: the pod must not find it."""
    worker = tmp_path / "airflow-home"
    model = worker / "gpuflow" / "artifacts" / "run" / "model" / "config.json"
    model.parent.mkdir(parents=True)
    model.write_text(json.dumps({"model_type": "llama"}))
    code = f"print(open({str(model)!r}).read())"
    extra = {"worker_paths": [str(worker)], "runtimes": [python_runtime()]}
    with EmulatorProcess.start(tmp_path / "emulator", nodes=[{"name": "cpu-0"}], extra=extra) as emulator:
        core = kube(emulator, "test")
        core.create_namespaced_pod("default", python_pod("reads-worker-file", code))
        phase = eventually(lambda: _phase(core, "reads-worker-file"), timeout=30, what="the pod to end")
        log = _log(core, "reads-worker-file")
    assert phase == "Failed", log
    assert "FileNotFoundError" in log
