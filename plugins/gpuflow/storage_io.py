"""A run's outputs, read or written from the Airflow worker: a training's progress, a benchmark report, an adapter
published to its endpoint.

Why not fsspec alone: s3fs cannot be installed beside the amazon provider (aiobotocore pins another botocore
range than the provider), so S3 goes through the provider's own client, with the cluster's AWS connection, as the
node-pool calls do; gcsfs and adlfs come with the google and azure providers. Per scheme:

- ``s3://BUCKET/KEY``: boto3 from ``S3Hook`` with the cluster's connection (its keys or role, else the worker's
  default chain) in the cluster's region; the endpoint is AWS's, or the connection's
  ``service_config: {s3: {endpoint_url}}`` (the emulator's moto) or ``endpoint_url``.
- ``gs://BUCKET/PATH``: gcsfs (its JSON API) with the cluster's Google connection's credentials (a key, application
  default credentials, or none for ``anonymous: true``); the endpoint is Google's, or ``STORAGE_EMULATOR_HOST`` (the
  emulator's fake-gcs-server).
- ``az://ACCOUNT/CONTAINER/PATH`` (as training and serving read it): adlfs for ACCOUNT with the worker's own Azure
  identity: ``AZURE_STORAGE_CONNECTION_STRING`` (the emulator's Azurite) or other ``AZURE_STORAGE_*`` settings,
  else ``DefaultAzureCredential`` (managed or workload identity).
- a path, ``file://`` or another fsspec scheme: fsspec as it is.

Without a cluster, S3 and GCS use the worker's default credentials (boto3's chain, application default credentials).
A cluster on another cloud than the URI's store is refused (``ClusterMismatch``) rather than used with the wrong
connection.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.implementations.local import LocalFileSystem

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import GpuflowError
from gpuflow.core.storage import object_store


class ClusterMismatch(GpuflowError, ValueError):
    """The URI is another cloud's storage than the cluster whose connection would be used to reach it."""


def read_text(uri: str, cluster: Cluster | None = None) -> str | None:
    """The object at ``uri`` as UTF-8 text, or None when there is none (e.g. no checkpoint was written yet)."""
    _require_own_cloud(uri, cluster)
    try:
        return _read(uri, cluster).decode()
    except FileNotFoundError:
        return None


def write_bytes(uri: str, data: bytes, cluster: Cluster | None = None) -> None:
    """Put ``data`` at ``uri`` in one request (an object appears whole); a local folder is made as needed."""
    _require_own_cloud(uri, cluster)
    if urlsplit(uri).scheme == "s3":
        bucket, key = _bucket_and_key(uri)
        _s3(cluster).put_object(Bucket=bucket, Key=key, Body=data)
        return
    fs, path = _filesystem(uri, cluster)
    if isinstance(fs, LocalFileSystem):  # object stores have no folders to make
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, data)


def copy_folder(source: str, target: str, cluster: Cluster | None = None) -> list[str]:
    """Copy every object under the folder ``source`` to the same names under ``target`` (one bucket's, small files:
    an adapter), in descending name order as the endpoint's adapter sync does, so a PEFT adapter's config comes
    last, once its weights are whole. Returns the names copied; raises FileNotFoundError when there are none."""
    _require_own_cloud(source, cluster)
    _require_own_cloud(target, cluster)
    names = sorted(_names_under(source.rstrip("/"), cluster), reverse=True)
    if not names:
        raise FileNotFoundError(f"nothing under {source}")
    for name in names:
        write_bytes(f"{target.rstrip('/')}/{name}", _read(f"{source.rstrip('/')}/{name}", cluster), cluster)
    return names


def _names_under(folder: str, cluster: Cluster | None) -> list[str]:
    """The objects under ``folder``, as paths relative to it."""
    if urlsplit(folder).scheme == "s3":
        bucket, prefix = _bucket_and_key(folder)
        pages = _s3(cluster).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
        return [obj["Key"][len(prefix) + 1 :] for page in pages for obj in page.get("Contents") or []]
    fs, path = _filesystem(folder, cluster)
    return [posixpath.relpath(found, path.rstrip("/")) for found in fs.find(path)]


def _require_own_cloud(uri: str, cluster: Cluster | None) -> None:
    """Refuse to reach one cloud's bucket with another cloud's connection (after a failover to another cloud, the
    run's outputs stay in the bucket of the cluster it was first provisioned on)."""
    store = object_store(uri)
    if cluster is not None and store is not None and store.cloud != cluster.cloud:
        raise ClusterMismatch(
            f"{uri} is {store.cloud} storage, but cluster {cluster.name} is on {cluster.cloud} (connection "
            f"{cluster.connection_id}): pass the cluster whose bucket holds it"
        )


def _read(uri: str, cluster: Cluster | None) -> bytes:
    if urlsplit(uri).scheme == "s3":
        return _s3_get(uri, cluster)
    fs, path = _filesystem(uri, cluster)
    return bytes(fs.cat_file(path))


def _s3_get(uri: str, cluster: Cluster | None) -> bytes:
    """The object's bytes; a missing key is a FileNotFoundError, as fsspec reports one."""
    from botocore.exceptions import ClientError

    bucket, key = _bucket_and_key(uri)
    try:
        return bytes(_s3(cluster).get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
            raise FileNotFoundError(uri) from exc
        raise


def _bucket_and_key(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def _s3(cluster: Cluster | None) -> Any:
    """boto3's S3 client as the provider builds it from the connection (endpoint, retries, credentials)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    if cluster is None:
        return S3Hook(aws_conn_id=None).conn  # boto3's default chain
    return S3Hook(aws_conn_id=cluster.connection_id, region_name=cluster.region).conn


def _filesystem(uri: str, cluster: Cluster | None) -> tuple[Any, str]:
    scheme, _, rest = uri.partition("://")
    if scheme == "gs":
        # gcsfs's own JSON-API filesystem: its default (ExtendedGcsFileSystem) first asks the Storage Control gRPC
        # API for each bucket's layout, which a whole small object of a regional bucket does not need, and which a
        # GCS emulator does not serve (a minute's timeout per call, retried on every call after a failure).
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(token=_google_token(cluster)), rest
    if scheme == "az":  # adlfs alone would read ACCOUNT as the container
        account, _, path = rest.partition("/")
        return fsspec.filesystem("az", account_name=account), path
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, str(path)


def _google_token(cluster: Cluster | None) -> Any:
    if cluster is None:
        return None
    from gpuflow.clouds.connections import extras
    from gpuflow.clouds.gcp import google_credentials

    return google_credentials(cluster.connection_id, extras(cluster.connection_id))
