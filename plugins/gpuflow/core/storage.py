"""Whether a URI is object storage, whose, and whether a serving pod can copy a model from it.

One answer for every caller: the job validation refuses an ``output_uri`` the endpoint could not download
the model from (an abfs:// one used to pass and fail at deploy, after the training was paid for), and the
endpoint manifests pick the downloader from the same record (``CloudTraits.storage_schemes``).

A pod on a cloud cluster sees nothing of the Airflow worker's disk, so a run's outputs go to the bucket of the
cluster it runs on (``artifacts`` in clusters.yaml, in the cluster's own cloud: no cross-cloud egress by default),
and a path is accepted only where every cluster the run may land on is marked ``local`` (its pods share this
machine's files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gpuflow.core.clouds import CLOUD_TRAITS
from gpuflow.core.errors import RequestError


@dataclass(frozen=True, slots=True)
class ObjectStore:
    """A URI's object store: its scheme, the cloud whose storage it is, and the rclone remote that copies
    from it (None when no downloader reads that scheme)."""

    scheme: str
    cloud: str
    rclone_remote: str | None


# Schemes a job may name besides the clouds' storage: a path on the node (file://) and fsspec's in-memory store.
LOCAL_SCHEMES = ("file", "memory")


def known_schemes() -> tuple[str, ...]:
    """Every URI scheme a job may name for its data or outputs: the local ones and each cloud's storage."""
    return (*LOCAL_SCHEMES, *(scheme for facts in CLOUD_TRAITS.values() for scheme in facts.storage_schemes))


def object_store(uri: str) -> ObjectStore | None:
    """The object store ``uri`` points into, or None for a path, a file:// URI, a model id or another scheme."""
    scheme = urlsplit(uri).scheme
    for facts in CLOUD_TRAITS.values():
        if scheme in facts.storage_schemes:
            return ObjectStore(scheme, facts.name, facts.storage_schemes[scheme])
    return None


def downloadable(uri: str) -> ObjectStore | None:
    """The object store a serving pod can copy a model from at ``uri``, or None (not storage, or no downloader)."""
    store = object_store(uri)
    return store if store is not None and store.rclone_remote is not None else None


def servable_shapes() -> str:
    """The URI shapes a model can be downloaded from, for messages."""
    return ", ".join(facts.model_uri_shape for facts in CLOUD_TRAITS.values() if facts.model_uri_shape)


def require_servable(field: str, uri: str) -> None:
    """Refuse a model location the endpoint cannot read: neither local (a path, file://) nor downloadable."""
    scheme = urlsplit(uri).scheme
    if not scheme or scheme == "file":
        return
    if downloadable(uri) is not None:
        return
    store = object_store(uri)
    why = f"{scheme}:// is {store.cloud} storage that the model downloader cannot read; " if store else ""
    raise RequestError(field, uri, f"{why}a URI the endpoint can copy the model from: {servable_shapes()}")


def is_local(uri: str) -> bool:
    """A path or file:// URI: a place on some machine's disk, not in object storage."""
    return urlsplit(uri).scheme in ("", "file")


def require_cluster_bucket(cloud: str, uri: str, *, local: bool) -> None:
    """Refuse a cluster's ``artifacts`` that its pods could not write or its endpoint could not read: a path on a
    cluster not marked local, another cloud's storage, or a store the model downloader cannot read."""
    shape = CLOUD_TRAITS[cloud].model_uri_shape
    if is_local(uri):
        if local:
            return
        raise RequestError(
            "artifacts",
            uri,
            f"a bucket in {cloud}'s object storage ({shape}): pods on this cluster cannot see this machine's files "
            "(set local: true only for a cluster whose pods share them)",
        )
    store = object_store(uri)
    if store is None or store.cloud != cloud or not urlsplit(uri).netloc:
        why = f"{store.cloud} storage; " if store is not None and store.cloud != cloud else ""
        raise RequestError("artifacts", uri, f"{why}a bucket in the cluster's own cloud, {cloud}: {shape}")
    require_servable("artifacts", uri)  # the endpoint downloads the model trained there


def require_reachable_output(field: str, uri: str, clusters: Mapping[str, bool]) -> None:
    """Refuse a local ``uri`` when a cluster the run may land on (name -> marked local) is not local."""
    require_servable(field, uri)
    remote = sorted(name for name, local in clusters.items() if not local)
    if is_local(uri) and remote:
        raise RequestError(
            field,
            uri,
            f"an object-storage URI ({servable_shapes()}), or unset for each cluster's artifacts bucket: the pods "
            f"of {', '.join(remote)} cannot see this machine's files (not marked local: true in clusters.yaml)",
        )
