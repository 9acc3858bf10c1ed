"""One function says whether a URI is object storage, whose, and whether the serving downloader reads it."""

from __future__ import annotations

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.storage import ObjectStore, object_store, require_reachable_output, require_servable


@pytest.mark.parametrize(
    ("uri", "store"),
    [
        ("s3://bucket/run/model", ObjectStore("s3", "aws", ":s3:")),
        ("gs://bucket/run/model", ObjectStore("gs", "gcp", ":gcs:")),
        ("az://account/container/model", ObjectStore("az", "azure", ":azureblob:")),
        ("abfs://container@account.dfs.core.windows.net/model", ObjectStore("abfs", "azure", None)),
        ("abfss://container@account.dfs.core.windows.net/model", ObjectStore("abfss", "azure", None)),
    ],
)
def test_an_object_store_uri_names_its_cloud_and_downloader(uri: str, store: ObjectStore) -> None:
    assert object_store(uri) == store


@pytest.mark.parametrize("uri", ["/data/model", "file:///data/model", "org/model", "memory://model", "ftp://h/m"])
def test_paths_model_ids_and_other_schemes_are_no_object_store(uri: str) -> None:
    assert object_store(uri) is None


@pytest.mark.parametrize("uri", ["/data/run", "file:///data/run", "s3://b/run", "gs://b/run", "az://acct/c/run"])
def test_a_servable_uri_passes(uri: str) -> None:
    require_servable("output_uri", uri)


@pytest.mark.parametrize(
    ("uri", "fix"),
    [
        ("abfs://container@account.dfs.core.windows.net/run", "azure storage that the model downloader cannot read"),
        ("memory://run", "s3://BUCKET/PATH, gs://BUCKET/PATH"),
    ],
)
def test_a_uri_the_endpoint_cannot_download_from_is_refused(uri: str, fix: str) -> None:
    with pytest.raises(RequestError) as error:
        require_servable("output_uri", uri)
    assert error.value.field == "output_uri"
    assert error.value.value == uri
    assert fix in error.value.expected
    assert "az://ACCOUNT/CONTAINER/PATH" in error.value.expected


@pytest.mark.parametrize("uri", ["/srv/artifacts", "file:///srv/artifacts"])
def test_a_local_output_is_refused_when_a_cluster_the_run_may_land_on_is_not_local(uri: str) -> None:
    """A cloud pod cannot see this machine's files: the model would be lost and vLLM given a missing path."""
    with pytest.raises(RequestError) as error:
        require_reachable_output("GPUFLOW_ARTIFACTS_URI", uri, {"gke-a": True, "eks-b": False})
    assert error.value.field == "GPUFLOW_ARTIFACTS_URI"
    assert str(error.value).startswith(f"GPUFLOW_ARTIFACTS_URI={uri!r} is invalid: an object-storage URI (")
    assert "the pods of eks-b cannot see this machine's files (not marked local: true in clusters.yaml)" in str(
        error.value
    )


def test_a_local_output_passes_when_every_cluster_is_local_and_a_bucket_always_does() -> None:
    require_reachable_output("output_uri", "/srv/artifacts", {"kind": True})
    require_reachable_output("output_uri", "s3://bucket/runs", {"eks-b": False})


def test_an_output_the_endpoint_cannot_download_is_refused_even_on_local_clusters() -> None:
    with pytest.raises(RequestError, match="abfs:// is azure storage that the model downloader cannot read"):
        require_reachable_output("output_uri", "abfs://c@a.dfs.core.windows.net/x", {"kind": True})
