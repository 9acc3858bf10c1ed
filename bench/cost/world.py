"""The simulated clouds: the benchmark's T4 offers, each with its price, start-up time and availability, the
clusters gpuflow may add pools to there, and the date tick 0 stands for.

The traces measured V100s (p3.2xlarge), which gpuflow refuses (vLLM needs compute capability 7.5), so they are laid
on the one-GPU T4 node of each cloud, the GPU all three clouds sell in these regions: AWS g4dn.xlarge, GCP
n1-highmem-4 with a T4, Azure Standard_NC4as_T4_v3. The planner reads exactly those rows of the shipped catalog.

An offer is a place (cloud, region, zone) bought as one capacity type. Spot capacity follows that place's trace; on-
demand capacity is always there. Start-up is the cloud's ``CloudTraits.typical_provision_s`` (each figure cited in
``gpuflow.core.clouds``) plus ``PLAN_RESTART_S``, the product's own figure for pulling the training image and loading
the checkpoint: the figures gpuflow's deadline policy plans with are the figures the simulation charges.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cost.availability import Availability
from bench.cost.model import TICK_S, ticks
from gpuflow.core.catalog import COLUMNS, CapacityType, Catalog, Offer, default_catalog_path, parse_catalog
from gpuflow.core.clouds import traits
from gpuflow.core.clusters import Clusters, parse_clusters
from gpuflow.core.deadline import PLAN_RESTART_S

ACCELERATOR = "T4"
INSTANCES = {"aws": "g4dn.xlarge", "gcp": "n1-highmem-4", "azure": "Standard_NC4as_T4_v3"}
REGIONS = {
    "aws": ("us-east-1", "us-east-2", "us-west-2"),  # the traced regions
    "gcp": ("us-central1", "us-east1", "us-west1"),
    "azure": ("centralus", "eastus", "eastus2", "northcentralus", "southcentralus", "westus", "westus2", "westus3"),
}
EPOCH = datetime(2023, 2, 15, tzinfo=UTC)  # the AWS traces' first probe
Location = tuple[str, str, str | None]  # cloud, region, zone (None: an Azure region, which the catalog lists whole)
OfferKey = tuple[str, str, str | None, str, CapacityType]


@dataclass(frozen=True, eq=False)
class SimOffer:
    """One offer as the simulation runs it."""

    cloud: str
    region: str
    zone: str | None
    instance_type: str
    capacity: CapacityType
    hourly_usd: float
    provision_ticks: int
    restart_ticks: int
    availability: Availability

    @property
    def key(self) -> OfferKey:
        return (self.cloud, self.region, self.zone, self.instance_type, self.capacity)

    @property
    def startup_ticks(self) -> int:
        return self.provision_ticks + self.restart_ticks

    def usd(self, held_ticks: int) -> float:
        return self.hourly_usd * held_ticks * TICK_S / 3600

    def __str__(self) -> str:
        return f"{self.cloud}/{self.region}/{self.zone or '-'} {self.capacity.value} {self.hourly_usd:g} $/h"


@dataclass(frozen=True)
class World:
    """Every offer of the simulation, the clusters that reach them, and the catalog the planner reads."""

    offers: tuple[SimOffer, ...]
    catalog: Catalog
    clusters: Clusters
    horizon: int  # ticks of availability known; a run that gets there fails
    epoch: datetime = EPOCH
    by_key: dict[OfferKey, SimOffer] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {o.key: o for o in self.offers})

    def offer(self, key: OfferKey) -> SimOffer:
        return self.by_key[key]

    def of_choice(self, choice: Mapping[str, Any]) -> SimOffer:
        """The offer of a plan option (``Choice.to_dict()``)."""
        capacity = CapacityType(choice["capacity_type"])
        return self.offer(
            (choice["cloud"], choice["region"], choice["availability_zone"], choice["instance_type"], capacity)
        )


def bench_catalog(path: Path | None = None) -> Catalog:
    """The shipped catalog's rows of the benchmark's instances in its regions: all the planner may choose from."""
    source = path or default_catalog_path()
    rows = list(csv.reader(io.StringIO(source.read_text())))
    kept = io.StringIO()
    csv.writer(kept).writerows([rows[0], *(row for row in rows[1:] if _wanted(row))])
    return parse_catalog(kept.getvalue(), source=f"{source} ({ACCELERATOR} rows of the benchmark)")


def _wanted(row: list[str]) -> bool:
    cell = dict(zip(COLUMNS, row, strict=False))
    cloud = cell.get("cloud", "")
    return (
        INSTANCES.get(cloud) == cell.get("instance_type")
        and (cell.get("accelerator"), cell.get("accelerator_count")) == (ACCELERATOR, "1")
        and cell.get("region") in REGIONS.get(cloud, ())
    )


def build_world(catalog: Catalog, spot: Mapping[Location, Availability]) -> World:
    """The world of ``catalog``'s offers at the places ``spot`` gives the availability of."""
    horizon = min(len(a) for a in spot.values())
    always = Availability.always(horizon)
    offers = []
    for offer in catalog.offers:
        place = (offer.cloud, offer.region, offer.zone)
        if place in spot and offer.spot_usd is not None:
            offers.append(_sim_offer(offer, CapacityType.SPOT, offer.spot_usd, spot[place]))
        if place in spot and offer.on_demand_usd is not None:
            offers.append(_sim_offer(offer, CapacityType.ON_DEMAND, offer.on_demand_usd, always))
    return World(tuple(offers), catalog, _clusters(spot), horizon)


def spot_zones(catalog: Catalog) -> dict[tuple[str, str], list[str | None]]:
    """(cloud, region) -> the places there whose offer has a spot price, sorted."""
    found: dict[tuple[str, str], list[str | None]] = {}
    for offer in catalog.offers:
        if offer.spot_usd is not None:
            found.setdefault((offer.cloud, offer.region), []).append(offer.zone)
    return {key: sorted(zones, key=lambda z: z or "") for key, zones in sorted(found.items())}


def _sim_offer(offer: Offer, capacity: CapacityType, hourly: float, availability: Availability) -> SimOffer:
    return SimOffer(
        cloud=offer.cloud,
        region=offer.region,
        zone=offer.zone,
        instance_type=offer.instance_type,
        capacity=capacity,
        hourly_usd=hourly,
        provision_ticks=ticks(traits(offer.cloud).typical_provision_s),
        restart_ticks=ticks(PLAN_RESTART_S),
        availability=availability,
    )


def _clusters(places: Iterable[Location]) -> Clusters:
    """One cluster per (cloud, region) of ``places``; an EKS cluster's subnets are exactly the zones simulated."""
    regions: dict[tuple[str, str], list[str]] = {}
    for cloud, region, zone in places:
        regions.setdefault((cloud, region), []).extend([zone] if zone else [])
    entries = [_cluster(cloud, region, zones) for (cloud, region), zones in sorted(regions.items())]
    return parse_clusters({"clusters": entries}, source="bench/cost/world.py")


def _cluster(cloud: str, region: str, zones: list[str]) -> dict[str, Any]:
    settings: dict[str, dict[str, Any]] = {
        "aws": {"node_role_arn": "arn:aws:iam::000000000000:role/bench", "subnets": {z: f"subnet-{z}" for z in zones}},
        "gcp": {"project": "bench", "location": region},
        "azure": {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "bench"},
    }
    artifacts = {"aws": "s3://bench", "gcp": "gs://bench", "azure": "az://bench/artifacts"}
    return {
        "cloud": cloud,
        "region": region,
        "name": f"bench-{cloud}-{region}",
        "connection_id": f"bench_{cloud}",
        "settings": settings[cloud],
        "artifacts": artifacts[cloud],
    }
