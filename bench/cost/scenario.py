"""The benchmark's world: the AWS traces on their catalog zones, synthetic GCP and Azure zones, all for one seed.

Each trace is laid twice end to end, so a run that starts late in the 45 days and overruns its deadline still has
capacity to read; jobs start early enough that their deadline falls within the first copy.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from bench.cost.availability import Availability
from bench.cost.traces import SpotProcess, Trace, aws_traces, zone_ids_by_position
from bench.cost.world import Location, World, build_world, spot_zones
from gpuflow.core.catalog import Catalog
from gpuflow.core.clouds import CLOUDS

COPIES = 2


def trace_world(catalog: Catalog, seed: int, clouds: Collection[str] = CLOUDS) -> tuple[World, dict[str, Any]]:
    """The world on ``clouds``, and how it was made (the zone mapping, the synthetic process) for the results file;
    ``clouds=("aws",)`` leaves only the real traces."""
    traced = aws_traces()
    zones = spot_zones(catalog)
    mapping = zone_ids_by_position(
        [t.zone for t in traced],
        {region: [z for z in places if z] for (cloud, region), places in zones.items() if cloud == "aws"},
    )
    by_name = {t.zone: t for t in traced}
    process = SpotProcess.like(traced)
    gap, length = traced[0].gap_s, len(traced[0].values)
    spot: dict[Location, Availability] = {
        ("aws", by_name[name].region, zone_id): _laid(by_name[name]) for zone_id, name in mapping.items()
    }
    for (cloud, region), places in zones.items():
        if cloud != "aws" and cloud in clouds:
            for zone in places:
                synthetic = process.trace(zone or f"{cloud}/{region}", seed=seed, gap_s=gap, length=length)
                spot[(cloud, region, zone)] = _laid(synthetic)
    made = {
        "aws_zone_mapping": "by position: per region, trace zone names sorted, catalog zone ids sorted",
        "aws_zones": dict(sorted(mapping.items())),
        "synthetic_process": process.to_dict(),
        "availability": {"/".join(p for p in place if p): round(a.share_up, 3) for place, a in sorted(spot.items())},
        "trace_days": round(length * gap / 86400, 1),
    }
    return build_world(catalog, spot), made


def _laid(trace: Trace) -> Availability:
    return Availability.from_trace(trace.values, trace.gap_s, repeat=COPIES)
