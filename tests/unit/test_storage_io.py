"""Reading and writing one object of a run's outputs where no cloud is involved: a folder, file:// and fsspec's
memory store (the clouds' stores: tests/integration/test_storage_io_on_stores.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuflow.core.clusters import Cluster
from gpuflow.storage_io import ClusterMismatch, read_text, write_bytes


def test_a_file_in_a_folder_that_does_not_exist_yet_is_written_and_read_back(tmp_path: Path) -> None:
    target = tmp_path / "run" / "benchmark" / "benchmark.json"
    write_bytes(str(target), b'{"ok": true}')
    assert target.read_bytes() == b'{"ok": true}'
    assert read_text(target.as_uri()) == '{"ok": true}'


def test_nothing_there_reads_as_none(tmp_path: Path) -> None:
    assert read_text(str(tmp_path / "progress.json")) is None
    assert read_text("memory://no-such-run/progress.json") is None


def test_another_fsspec_scheme_goes_through_fsspec() -> None:
    write_bytes("memory://storage-io-unit/progress.json", b'{"steps_done": 3}')
    assert read_text("memory://storage-io-unit/progress.json") == '{"steps_done": 3}'


def test_another_clouds_bucket_is_refused_rather_than_reached_with_the_wrong_connection() -> None:
    gke = Cluster("gcp", "us-central1", "gpuflow-usc1", "gpuflow_gcp", artifacts="gs://gpuflow-artifacts-usc1")
    with pytest.raises(ClusterMismatch) as refused:
        read_text("s3://first-pool/run/progress.json", gke)
    assert str(refused.value).startswith("s3://first-pool/run/progress.json is aws storage, but cluster gpuflow-usc1")
    with pytest.raises(ClusterMismatch, match="pass the cluster whose bucket holds it"):
        write_bytes("az://account/container/run/benchmark.json", b"{}", gke)
