"""The availability the benchmark runs on: the paper's AWS V100 traces, and synthetic zones for GCP and Azure.

AWS: ``include/traces/availability/1-node/aws-02-15-2023`` (p3.2xlarge, 1 V100, nine zones, 45.5 days probed every
195 s; PROVENANCE.md there). The traces name zones (us-east-1a), the catalog zone ids (use1-az1), and which name
is which id differs per AWS account; so each region's trace zones, sorted by name, are given that region's
spot-priced catalog zones, sorted by id, by position.

GCP and Azure publish no GPU spot trace. Each of their zones is an alternating renewal process: up periods, then
outages, each drawn from a lognormal distribution. Its parameters are taken from the AWS traces themselves (the
median over the nine zones of each zone's mean and median up and down period), so the synthetic zones are neither
kinder nor harsher than a typical traced one; the seed and the zone's name fix each draw.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AWS_TRACES = ROOT / "include" / "traces" / "availability" / "1-node" / "aws-02-15-2023"
TRACE_SUFFIX = "_v100_1.json"


@dataclass(frozen=True, slots=True)
class Trace:
    """One zone's probes: ``values[i]`` is what was available ``i * gap_s`` seconds after the trace's start."""

    zone: str
    gap_s: int
    values: tuple[int, ...]

    @property
    def region(self) -> str:
        return self.zone[:-1]  # an AWS zone name is its region and a letter


def aws_traces(folder: Path = AWS_TRACES) -> list[Trace]:
    """The traced zones, sorted by name."""
    traces = []
    for path in sorted(folder.glob(f"*{TRACE_SUFFIX}")):
        document = json.loads(path.read_text())
        zone = path.name.removesuffix(TRACE_SUFFIX)
        traces.append(Trace(zone, int(document["metadata"]["gap_seconds"]), tuple(document["data"])))
    return traces


def zone_ids_by_position(traced: Sequence[str], catalog_zones: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Catalog zone id -> trace zone name: per region, the n-th traced name (sorted) for the n-th id (sorted)."""
    mapping: dict[str, str] = {}
    for region, group in groupby(sorted(traced), key=lambda name: name[:-1]):
        ids, names = sorted(catalog_zones.get(region, ())), list(group)
        if len(ids) < len(names):
            raise ValueError(f"{region}: {len(names)} traced zones but the catalog prices spot in only {ids}")
        mapping.update(zip(ids, names, strict=False))
    return mapping


@dataclass(frozen=True, slots=True)
class SpotProcess:
    """Up periods and outages, each lognormal with the given mean and median (hours)."""

    mean_up_h: float
    median_up_h: float
    mean_down_h: float
    median_down_h: float

    @classmethod
    def like(cls, traces: Sequence[Trace]) -> SpotProcess:
        """The median traced zone: the median over ``traces`` of each one's mean and median periods."""
        periods = [_periods(t) for t in traces]
        return cls(
            mean_up_h=statistics.median(statistics.mean(up) for up, _ in periods),
            median_up_h=statistics.median(statistics.median(up) for up, _ in periods),
            mean_down_h=statistics.median(statistics.mean(down) for _, down in periods),
            median_down_h=statistics.median(statistics.median(down) for _, down in periods),
        )

    def trace(self, zone: str, *, seed: int, gap_s: int, length: int) -> Trace:
        """``length`` probes of a zone; the same seed and zone always give the same trace."""
        rng = random.Random(f"{seed}/{zone}")
        up = rng.random() < self.mean_up_h / (self.mean_up_h + self.mean_down_h)
        values: list[int] = []
        while len(values) < length:
            mean, median = (self.mean_up_h, self.median_up_h) if up else (self.mean_down_h, self.median_down_h)
            probes = max(1, round(_lognormal(rng, mean, median) * 3600 / gap_s))
            values += [int(up)] * probes
            up = not up
        return Trace(zone, gap_s, tuple(values[:length]))

    def to_dict(self) -> dict[str, Any]:
        return {name: round(getattr(self, name), 3) for name in self.__slots__}


def _lognormal(rng: random.Random, mean: float, median: float) -> float:
    """A draw with that mean and median: mu = ln(median), sigma^2 = 2 ln(mean / median)."""
    sigma = math.sqrt(2 * math.log(max(mean / median, 1.0)))
    return rng.lognormvariate(math.log(median), sigma)


def _periods(trace: Trace) -> tuple[list[float], list[float]]:
    """The lengths in hours of the trace's up periods and of its outages."""
    runs = [(up, len(list(group))) for up, group in groupby(v > 0 for v in trace.values)]
    up = [n * trace.gap_s / 3600 for is_up, n in runs if is_up]
    down = [n * trace.gap_s / 3600 for is_up, n in runs if not is_up]
    return up, down
