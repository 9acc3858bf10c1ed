from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from gpuflow.core.catalog import Catalog
from gpuflow.core.clusters import ClusterConfigError, load_clusters, parse_clusters
from gpuflow.core.errors import UnsatisfiableRequest
from gpuflow.core.planner import plan
from gpuflow.core.request import PlanRequest

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def test_shipped_clusters_file_loads_one_cluster_per_region() -> None:
    clusters = load_clusters()
    assert ("gcp", "us-central1") in clusters.regions
    assert clusters.for_region("aws", "us-east-1").settings["subnets"]["use1-az1"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cloud": "oci", "region": "x", "name": "c", "connection_id": "k"}, "clusters[0].cloud='oci' is invalid"),
        ({"cloud": "gcp", "region": "x", "name": "c"}, "clusters[0].connection_id is missing"),
        ({"cloud": "aws", "region": "x", "name": "c", "connection_id": "k"}, "lacks node_role_arn, subnets"),
        (
            {
                "cloud": "gcp",
                "region": "x",
                "name": "c",
                "connection_id": "k",
                "settings": {"project": "p", "location": "x", "disk_gib": 20},
                "artifacts": "gs://b",
            },
            "clusters[0]: settings.disk_gib=20 is invalid",
        ),
    ],
)
def test_bad_entries_name_the_entry_and_the_field(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_clusters({"clusters": [entry]}, source="test.yaml")


GKE = {
    "cloud": "gcp",
    "region": "us-central1",
    "name": "c",
    "connection_id": "k",
    "settings": {"project": "p", "location": "x"},
}


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        (None, "clusters[0].artifacts is missing: the bucket runs' outputs go to, e.g. gs://BUCKET/PATH"),
        ("/srv/artifacts", "clusters[0]: artifacts='/srv/artifacts' is invalid: a bucket in gcp's object storage"),
        ("file:///srv/artifacts", "pods on this cluster cannot see this machine's files (set local: true only"),
        ("s3://b", "artifacts='s3://b' is invalid: aws storage; a bucket in the cluster's own cloud, gcp"),
        ("abfs://c@a.dfs.core.windows.net/x", "azure storage; a bucket in the cluster's own cloud, gcp"),
        ("gs:///no-bucket", "artifacts='gs:///no-bucket' is invalid: a bucket in the cluster's own cloud"),
    ],
)
def test_a_clusters_artifacts_must_be_a_bucket_of_its_own_cloud(artifacts: str | None, message: str) -> None:
    """Pods on a cloud node see nothing of the worker's disk, and another cloud's bucket is egress on every run."""
    entry = {**GKE, **({"artifacts": artifacts} if artifacts else {})}
    with pytest.raises(ClusterConfigError, match=re.escape(message)):
        parse_clusters({"clusters": [entry]}, source="test.yaml")


def test_a_cluster_marked_local_may_keep_artifacts_in_a_path() -> None:
    clusters = parse_clusters({"clusters": [{**GKE, "artifacts": "/srv/a", "local": True}]}, source="t.yaml")
    assert clusters.for_region("gcp", "us-central1").local


def test_local_must_be_a_boolean() -> None:
    with pytest.raises(ClusterConfigError, match=re.escape("clusters[0].local='yes' is invalid: true or false")):
        parse_clusters({"clusters": [{**GKE, "artifacts": "gs://b", "local": "yes"}]}, source="t.yaml")


def test_shipped_clusters_each_name_a_bucket_of_their_own_cloud() -> None:
    schemes = {"aws": "s3://", "gcp": "gs://", "azure": "az://"}
    clusters = load_clusters().by_region.values()
    assert all(c.artifacts.startswith(schemes[c.cloud]) and not c.local for c in clusters)


def test_a_region_without_a_cluster_is_refused_by_name() -> None:
    with pytest.raises(ClusterConfigError, match="no cluster is configured for gcp/asia-east1"):
        load_clusters().for_region("gcp", "asia-east1")


def test_planner_only_proposes_regions_with_a_cluster(catalog: Catalog) -> None:
    clusters = load_clusters().regions
    result = plan(PlanRequest(accelerator="L4", max_fallbacks=32), catalog, now=NOW, clusters=clusters)
    assert {(c.offer.cloud, c.offer.region) for c in (result.chosen, *result.fallbacks)} <= clusters
    assert result.rejected["no_cluster"] > 0


def test_no_cluster_is_named_when_it_removes_the_last_offers(catalog: Catalog) -> None:
    with pytest.raises(UnsatisfiableRequest, match="none is in a region \\(and zone\\) a configured cluster reaches"):
        plan(PlanRequest(accelerator="L4", regions=("asia-*",)), catalog, now=NOW, clusters={("gcp", "us-central1")})


def test_a_cluster_reaching_some_zones_says_which() -> None:
    clusters = load_clusters()
    zones = clusters.zones
    subnets = clusters.for_region("aws", "us-east-1").settings["subnets"]
    assert zones[("aws", "us-east-1")] == frozenset(subnets)
    assert ("gcp", "us-central1") not in zones  # a regional GKE cluster reaches every zone of its region
    zonal = parse_clusters(
        {
            "clusters": [
                {
                    "cloud": "gcp",
                    "region": "us-central1",
                    "name": "zonal",
                    "connection_id": "gpuflow_gcp",
                    "settings": {"project": "p", "location": "us-central1-a"},
                    "artifacts": "gs://b",
                }
            ]
        },
        source="test",
    )
    assert zonal.zones == {("gcp", "us-central1"): frozenset({"us-central1-a"})}


def test_planner_proposes_no_zone_the_cluster_cannot_place_a_pool_in(catalog: Catalog) -> None:
    """us-east-1 lists H100 nodes in a Local Zone (use1-atl2-az1) where the shipped EKS cluster has no subnet."""
    clusters = load_clusters()
    request = PlanRequest(accelerator="H100", count=8, clouds=("aws",), regions=("us-east-1",), max_fallbacks=32)
    anywhere = plan(request, catalog, now=NOW, clusters=clusters.regions)
    assert any(c.offer.zone not in clusters.zones[("aws", "us-east-1")] for c in (anywhere.chosen, *anywhere.fallbacks))
    reachable = plan(request, catalog, now=NOW, clusters=clusters.regions, zones=clusters.zones)
    options = (reachable.chosen, *reachable.fallbacks)
    assert {c.offer.zone for c in options} <= clusters.zones[("aws", "us-east-1")]
    assert reachable.rejected.get("no_cluster", 0) > anywhere.rejected.get("no_cluster", 0)


def test_an_azure_cluster_bucket_that_the_model_downloader_cannot_read_is_refused() -> None:
    aks = {**GKE, "cloud": "azure", "settings": {"subscription_id": "s", "resource_group": "g"}}
    with pytest.raises(ClusterConfigError, match=re.escape("abfs:// is azure storage that the model downloader")):
        parse_clusters({"clusters": [{**aks, "artifacts": "abfs://c@a.dfs.core.windows.net/x"}]}, source="t.yaml")
