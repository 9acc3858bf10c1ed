"""One function says whether a URI is object storage, whose, and whether the serving downloader reads it."""

from __future__ import annotations

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.storage import ObjectStore, object_store, require_servable


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
