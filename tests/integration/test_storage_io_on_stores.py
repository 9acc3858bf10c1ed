"""The worker reads a training's progress.json from each cloud's store the way a supervising task would: with the
cluster's connection (S3 through the amazon provider, with no s3fs), the stores' endpoints from the emulator."""

from __future__ import annotations

import json

import pytest
from gpuflow_emulator.stores import StoresConfig

from gpuflow.core.clusters import Cluster
from gpuflow.core.progress import parse_progress, progress_uri
from gpuflow.storage_io import copy_folder, read_text, write_bytes
from tests.support.emulated_clouds import bucket_keys

# What the trainer writes (include/training/gpuflow_training/progress.py).
PROGRESS = {
    "steps_done": 140,
    "total_steps": 200,
    "step_seconds": 0.412,
    "checkpoint": "checkpoints/step-00000140",
    "updated_at": "2026-05-04T12:34:56+00:00",
    "finished": False,
    "restarts": 1,
}
CLOUDS = ["aws", "gcp", "azure"]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_progress_in_a_clusters_bucket_reads_back_through_its_connection(
    store_clusters: dict[str, Cluster], object_stores: StoresConfig, cloud: str
) -> None:
    cluster = store_clusters[cloud]
    uri = progress_uri(f"{cluster.artifacts}/gpu_train_and_serve/run-{cloud}")
    write_bytes(uri, json.dumps(PROGRESS).encode(), cluster)

    progress = parse_progress(read_text(uri, cluster), uri)

    assert progress is not None
    assert (progress.steps_done, progress.checkpoint, progress.restarts) == (140, "checkpoints/step-00000140", 1)
    # where training and serving look (az://ACCOUNT/CONTAINER/PATH: in CONTAINER), seen by the cloud's own client
    assert f"gpu_train_and_serve/run-{cloud}/progress.json" in bucket_keys(object_stores, cluster.artifacts)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_run_with_no_progress_yet_reads_as_none(store_clusters: dict[str, Cluster], cloud: str) -> None:
    uri = progress_uri(f"{store_clusters[cloud].artifacts}/gpu_train_and_serve/never-checkpointed")
    assert parse_progress(read_text(uri, store_clusters[cloud]), uri) is None


@pytest.mark.parametrize("cloud", CLOUDS)
def test_an_adapter_folder_is_copied_whole_to_the_endpoints_folder_config_last(
    store_clusters: dict[str, Cluster], object_stores: StoresConfig, cloud: str
) -> None:
    cluster = store_clusters[cloud]
    source = f"{cluster.artifacts}/gpu_train_and_serve/run-{cloud}/adapter"
    files = {"adapter_config.json": b"{}", "adapter_model.safetensors": b"weights", "tokenizer/vocab.json": b"[]"}
    for name, data in files.items():
        write_bytes(f"{source}/{name}", data, cluster)
    target = f"{cluster.artifacts}/endpoints/chat/adapters/tuned-{cloud}"

    copied = copy_folder(source, target, cluster)

    assert copied == sorted(files, reverse=True)
    assert copied[-1] == "adapter_config.json"
    assert {name: read_text(f"{target}/{name}", cluster) for name in files} == {
        name: data.decode() for name, data in files.items()
    }
    with pytest.raises(FileNotFoundError):
        copy_folder(f"{cluster.artifacts}/no-such-run/adapter", target, cluster)
