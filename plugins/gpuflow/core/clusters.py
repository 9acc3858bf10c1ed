"""Which long-lived Kubernetes clusters gpuflow may add GPU node pools to: configuration, not code.

The file (``include/config/clusters.yaml`` unless ``GPUFLOW_CLUSTERS`` names another) maps a cloud and
region to one cluster and the Airflow connection that reaches it. Cloud-specific settings (EKS subnets
and node role, GKE project and location, AKS subscription and resource group) stay in ``settings`` and
are read by that cloud's backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpuflow.core import disks
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.errors import GpuflowError, RequestError
from gpuflow.core.storage import require_cluster_bucket


class ClusterConfigError(GpuflowError):
    """The clusters file is missing, unreadable or wrong; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """One cluster gpuflow may add node pools to."""

    cloud: str
    region: str
    name: str
    connection_id: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    artifacts: str = ""  # the bucket runs' outputs go to, in the cluster's own cloud (``gpuflow.core.storage``)
    local: bool = False  # its pods share this machine's files, so ``artifacts`` may be a path

    @property
    def key(self) -> tuple[str, str]:
        return (self.cloud, self.region)


@dataclass(frozen=True)
class Clusters:
    """The configured clusters, one per (cloud, region)."""

    source: str
    by_region: Mapping[tuple[str, str], Cluster]

    def for_region(self, cloud: str, region: str) -> Cluster:
        try:
            return self.by_region[(cloud, region)]
        except KeyError:
            raise ClusterConfigError(f"no cluster is configured for {cloud}/{region} in {self.source}") from None

    @property
    def regions(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.by_region)

    @property
    def zones(self) -> dict[tuple[str, str], frozenset[str]]:
        """For each cluster that reaches only some zones of its region, those zones (see
        ``CloudTraits.reachable_zones``: an EKS cluster's subnets, a zonal GKE cluster's zone)."""
        reach = {}
        for key, cluster in self.by_region.items():
            zones = traits(cluster.cloud).reachable_zones(cluster.region, cluster.settings)
            if zones is not None:
                reach[key] = zones
        return reach


def default_clusters_path() -> Path:
    return Path(__file__).resolve().parents[3] / "include" / "config" / "clusters.yaml"


def load_clusters(path: str | Path | None = None) -> Clusters:
    location = Path(path or default_clusters_path())
    try:
        document = yaml.safe_load(location.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterConfigError(f"clusters file {location} cannot be read: {exc}") from exc
    return parse_clusters(document, source=str(location))


def parse_clusters(document: Any, *, source: str) -> Clusters:
    entries = document.get("clusters") if isinstance(document, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise ClusterConfigError(f"{source}: expected a top-level 'clusters:' list with at least one entry")
    by_region: dict[tuple[str, str], Cluster] = {}
    for index, entry in enumerate(entries):
        cluster = _cluster(entry, f"{source}: clusters[{index}]")
        if cluster.key in by_region:
            raise ClusterConfigError(f"{source}: clusters[{index}] repeats {cluster.cloud}/{cluster.region}")
        by_region[cluster.key] = cluster
    return Clusters(source=source, by_region=by_region)


def _cluster(entry: Any, where: str) -> Cluster:
    if not isinstance(entry, Mapping):
        raise ClusterConfigError(f"{where}: expected a mapping, got {entry!r}")
    for required in ("cloud", "region", "name", "connection_id"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise ClusterConfigError(f"{where}.{required} is missing or not a string")
    cloud = entry["cloud"]
    if cloud not in CLOUDS:
        raise ClusterConfigError(f"{where}.cloud={cloud!r} is invalid: one of {', '.join(CLOUDS)}")
    settings = entry.get("settings") or {}
    missing = [key for key in traits(cloud).required_settings if key not in settings]
    if missing:
        raise ClusterConfigError(f"{where}.settings lacks {', '.join(missing)} (required for {cloud})")
    local = entry.get("local", False)
    if not isinstance(local, bool):
        raise ClusterConfigError(f"{where}.local={local!r} is invalid: true or false (default false)")
    if not isinstance(entry.get("artifacts"), str) or not entry["artifacts"]:
        shape = traits(cloud).model_uri_shape
        raise ClusterConfigError(f"{where}.artifacts is missing: the bucket runs' outputs go to, e.g. {shape}")
    try:  # refused when the file is read (plan), not when a pool is about to be bought
        disks.cluster_override(cloud, settings)
        require_cluster_bucket(cloud, entry["artifacts"], local=local)
    except RequestError as exc:
        raise ClusterConfigError(f"{where}: {exc}") from None
    return Cluster(
        cloud, entry["region"], entry["name"], entry["connection_id"], dict(settings), entry["artifacts"], local
    )
