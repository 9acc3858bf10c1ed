"""Start the emulator with the six clusters and three cloud APIs, and point Airflow's connections at it."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.connections import airflow_environment
from gpuflow_emulator.stores import ObjectStores, StoresConfig, worker_env
from gpuflow_emulator.testing import EmulatorProcess, free_port, python_runtime

from gpuflow.core.clusters import Cluster, load_clusters
from gpuflow.state.schema import migrate
from gpuflow.state.store import engine_for

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "include" / "emulator" / "scenarios"
DEFAULT_CONFIG = ROOT / "include" / "emulator" / "default.yaml"
OPENAI_DOUBLE = ROOT / "tests" / "integration" / "serving" / "openai_double.py"


# A training step that needs no GPU and little time: the training image (its runtime is .venv-ml, where the
# fsspec backends are) writes a config.json as the model, through the training package's URI handling, to
# OUTPUT_URI: the bucket of the cluster the run lands on; then, last, the trainer's progress.json saying it finished
# (include/training/README.md), which a retried train reads.
FAKE_TRAIN = (
    "import json, os; from datetime import datetime, UTC; from gpuflow_training import storage; "
    "fs, root = storage.filesystem(os.environ['OUTPUT_URI']); "
    "fs.pipe_file(root + '/model/config.json', json.dumps({'model_type': 'llama'}).encode()); "
    "fs.pipe_file(root + '/progress.json', json.dumps({'steps_done': 1, 'total_steps': 1, 'step_seconds': 0.1, "
    "'checkpoint': 'model', 'updated_at': datetime.now(UTC).isoformat(), 'finished': True, 'restarts': 0}).encode()); "
    "print('trained 1 step on', os.environ.get('DATASET_URI'), 'loss 0.0')"
)
FAKE_TRAINING: dict[str, Any] = {
    "training_image": "ghcr.io/gpuflow/train:0.1.0",
    "training_command": ["python", "-c", FAKE_TRAIN],
}

# A whole pipeline run in about a minute on running Airflow: one L4 on GCP, one-line training, the vLLM double.
FAST_CONF: dict[str, Any] = {
    "accelerator": "L4",
    "count": 1,
    "capacity": "on-demand",
    "clouds": ["gcp"],
    "job_name": "live",
    **FAKE_TRAINING,
    "served_model_name": "tiny",
    "benchmark_requests": 4,
    "benchmark_rate": 20.0,
}

# A training of FAKE_STEPS short steps that behaves as the real trainer does where a preemption is concerned: it
# checkpoints its step after every step, resumes from the checkpoint, and on SIGTERM finishes the step, checkpoints
# and exits 143. The model's config.json records the step each start began at ("starts"), so a test can tell a
# resumed training from one restarted from 0.
FAKE_STEPS = 60


def fake_resumable_training(steps: int = FAKE_STEPS) -> dict[str, Any]:
    """The job fields that run the resumable fake training for ``steps`` steps of 0.25 s."""
    return {**FAKE_TRAINING, "training_command": ["python", "-c", FAKE_RESUMABLE_TRAIN.replace("STEPS", str(steps))]}


FAKE_RESUMABLE_TRAIN = """
import json, os, signal, sys, time
from gpuflow_training import storage
fs, root = storage.filesystem(os.environ['OUTPUT_URI'])
state_path = root + '/fake-checkpoint.json'
state = json.loads(fs.cat_file(state_path)) if fs.exists(state_path) else {'step': 0, 'starts': []}
state['starts'].append(state['step'])
print('starting at step', state['step'], flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
while state['step'] < STEPS:
    time.sleep(0.25)
    state['step'] += 1
    fs.pipe_file(state_path, json.dumps(state).encode())
    print('step', state['step'], flush=True)
    if stop:
        print('SIGTERM: checkpointed step', state['step'], flush=True)
        sys.exit(143)
fs.pipe_file(root + '/model/config.json', json.dumps({'model_type': 'llama', **state}).encode())
"""


def bucket_keys(object_stores: StoresConfig, uri: str) -> list[str]:
    """The object names under ``uri`` (s3://BUCKET/P, gs://BUCKET/P, az://ACCOUNT/CONTAINER/P) in the session's
    stores, read with each cloud's own client (the Airflow env has no s3fs)."""
    scheme, _, rest = uri.partition("://")
    if scheme == "az":
        from azure.storage.blob import ContainerClient

        _account, _, path = rest.partition("/")
        container, _, prefix = path.partition("/")
        client = ContainerClient.from_connection_string(object_stores.azure_connection_string, container)
        return [blob.name for blob in client.list_blobs(name_starts_with=prefix)]
    bucket, _, prefix = rest.partition("/")
    if scheme == "s3":
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=object_stores.s3_url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    url = f"{object_stores.gcs_url}/storage/v1/b/{bucket}/o?prefix={prefix}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return [item["name"] for item in json.loads(response.read()).get("items", [])]


def gcs_object(object_stores: StoresConfig, uri: str) -> bytes:
    """The content of the object at gs://BUCKET/NAME in the session's fake-gcs-server."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    url = f"{object_stores.gcs_url}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def vllm_double_runtime() -> dict[str, Any]:
    """Until real vLLM serves locally, the vLLM image runs an OpenAI-compatible double taking vLLM's args."""
    return {"image_prefix": "vllm/vllm-openai", "entrypoint": [sys.executable, str(OPENAI_DOUBLE)]}


def start_emulator(
    directory: Path, scenario: str, object_stores: StoresConfig, *, real_ml: bool = False
) -> EmulatorProcess:
    """Six clusters, three cloud APIs on free ports, the session's object stores, and the default config's
    runtimes (the training image from ``.venv-ml``, the model download by rclone); the vLLM image runs the double
    unless ``real_ml``. The Airflow worker's home (``AIRFLOW_HOME``) is hidden from every container."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scenario.yaml").write_text((SCENARIOS / f"{scenario}.yaml").read_text())
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    runtimes = default["runtimes"]
    if not real_ml:
        runtimes = [python_runtime(), vllm_double_runtime(), *runtimes]
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": "scenario.yaml"}
    extra = {
        "clusters": default["clusters"],
        "clouds": clouds,
        "runtimes": runtimes,
        "images": default["images"],
        "device_plugins": default["device_plugins"],
        "auth": default["auth"],
        "object_stores": object_stores.to_json(),
        "worker_paths": [os.environ["AIRFLOW_HOME"]],
    }
    return EmulatorProcess.start(directory, extra=extra)


def worker_on_stores(object_stores: StoresConfig, monkeypatch: pytest.MonkeyPatch, state: Path) -> dict[str, Cluster]:
    """The Airflow worker's environment as the emulator gives it (its connections, with cloud APIs nobody listens
    on, and the stores' endpoints), and one cluster of include/config/clusters.yaml per cloud with its bucket made:
    what reading and writing a run's outputs from the worker needs, without the clusters."""
    nobody = {"aws": "http://127.0.0.1:9", "gcp": "http://127.0.0.1:9", "azure": "https://127.0.0.1:9", "azure_ca": ""}
    for name, value in {**airflow_environment(nobody, object_stores), **worker_env(object_stores)}.items():
        monkeypatch.setenv(name, value)
    stores = ObjectStores(object_stores, state)
    chosen: dict[str, Cluster] = {}
    for cluster in load_clusters().by_region.values():
        if cluster.cloud not in chosen:
            stores.create_bucket(cluster.artifacts, cluster.region)
            chosen[cluster.cloud] = cluster
    return chosen


def point_airflow_at(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, state: Path, object_stores: StoresConfig
) -> None:
    """Airflow's connections (S3 through the AWS one) and the worker's own access to the GCS and Azure stores
    (training progress, benchmark reports), pointed at the emulator; outputs go to each cluster's bucket
    (``artifacts`` in clusters.yaml)."""
    for name, value in {**airflow_environment(emulator.clouds(), object_stores), **worker_env(object_stores)}.items():
        monkeypatch.setenv(name, value)
    state_url = f"sqlite:///{state / 'state.db'}"
    monkeypatch.setenv("GPUFLOW_STATE_URL", state_url)
    migrate(engine_for(state_url))  # as `python -m gpuflow state-migrate` does before any component starts
    monkeypatch.delenv("GPUFLOW_ARTIFACTS_URI", raising=False)
    monkeypatch.setenv("GPUFLOW_POLL_INTERVAL_S", "0.5")
    # The scenarios run 20x faster than the clouds: 10 s here are the 200 s a cloud gets to replace a spot node.
    monkeypatch.setenv("GPUFLOW_REPLACEMENT_WAIT_S", "10")
