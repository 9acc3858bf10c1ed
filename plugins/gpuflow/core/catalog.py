"""The GPU price catalog: load, validate and repair every row, and index the offers for the planner.

A catalog is a snapshot of public price lists and carries their defects (see include/catalog/README.md).
Loading never fails on a bad row: the row is rejected or repaired, and the report says which and why.
An offer whose price for a capacity type is unknown is simply not buyable as that capacity type.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from gpuflow.core import accelerators, unsold
from gpuflow.core.clouds import CLOUDS
from gpuflow.core.errors import CatalogError

COLUMNS = (
    "cloud",
    "instance_type",
    "accelerator",
    "accelerator_count",
    "gpu_memory_gib",
    "vcpus",
    "memory_gib",
    "price_per_hour",
    "spot_price_per_hour",
    "region",
    "availability_zone",
)
# Prices the sources use for "unknown" (GCP v6e TPU rows at exactly 700 USD/h).
PLACEHOLDER_PRICES = frozenset({700.0})
# An on-demand price below this share of the same instance's median across locations is flagged as a
# suspect tier (GCP H100 shows ~4.2 USD per GPU-hour in 11 zones against 9.8-12.7 elsewhere). Flagged
# offers stay buyable - the price may be real - but the plan warns when it relies on one.
SUSPECT_TIER_RATIO = 0.6

SUSPECT_PRICE_TIER = "suspect-price-tier"

_Note = Callable[[str, str], None]


class CapacityType(StrEnum):
    """How a node is bought."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"


@dataclass(frozen=True, slots=True)
class Offer:
    """One purchasable node shape in one zone (or region, for Azure, which lists no zones)."""

    cloud: str
    instance_type: str
    accelerator: str
    accelerator_count: int
    memory_gib: float | None
    vcpus: float | None
    host_memory_gib: float | None
    region: str
    zone: str | None
    on_demand_usd: float | None
    spot_usd: float | None
    flags: tuple[str, ...] = ()

    def price(self, capacity: CapacityType) -> float | None:
        """USD per node-hour for this capacity type, or None when the catalog does not know it."""
        return self.on_demand_usd if capacity is CapacityType.ON_DEMAND else self.spot_usd

    @property
    def location(self) -> str:
        """Zone where there is one, else region: the finest place the offer names."""
        return self.zone or self.region


@dataclass(frozen=True, slots=True)
class RowNote:
    """What the loader did about one catalog row."""

    line: int
    action: str  # "rejected", "repaired" or "flagged"
    reason: str
    row: str


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    """Which catalog a plan used: its source, content hash and size."""

    source: str
    sha256: str
    rows: int
    offers: int

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "sha256": self.sha256, "rows": self.rows, "offers": self.offers}


# Rank of an offer among offers of the same shape: price, then place and name, so ties are deterministic.
RankKey = tuple[float, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class PricedOffers:
    """Offers of one group with a known price for one capacity type, cheapest first."""

    prices: tuple[float, ...]
    entries: tuple[tuple[RankKey, Offer], ...]


@dataclass(frozen=True, slots=True)
class OfferGroup:
    """Offers of one shape (accelerator, count) in one (cloud, region) with one memory size.

    The planner filters whole groups by cloud, region and memory, and finds the affordable prefix of a
    group's price list by bisection, so planning costs a step per group rather than per offer.
    """

    cloud: str
    region: str
    memory_gib: float | None
    size: int
    priced: dict[CapacityType, PricedOffers]


@dataclass(frozen=True)
class Catalog:
    """Validated offers, grouped by (accelerator, accelerators per node) for fast planning."""

    info: CatalogInfo
    offers: tuple[Offer, ...]
    notes: tuple[RowNote, ...]
    by_shape: dict[tuple[str, int], tuple[OfferGroup, ...]] = field(repr=False)
    by_accelerator: dict[str, int] = field(repr=False)
    max_memory_gib: dict[str, float] = field(repr=False)

    @functools.cached_property
    def accelerators(self) -> frozenset[str]:
        return frozenset(self.by_accelerator)

    def report(self) -> dict[str, int]:
        """Row counts per "action: reason", the loader's account of what it changed."""
        return dict(sorted(Counter(f"{n.action}: {n.reason}" for n in self.notes).items()))


def rank_key(offer: Offer, price: float) -> RankKey:
    return (price, offer.cloud, offer.region, offer.zone or "", offer.instance_type, offer.accelerator)


def default_catalog_path() -> Path:
    """The catalog shipped with the project: ``include/catalog/gpu_offers.csv``."""
    return Path(__file__).resolve().parents[3] / "include" / "catalog" / "gpu_offers.csv"


def load_catalog(source: str | Path | None = None) -> Catalog:
    """Load a catalog from a local path, a ``file://`` URI or any fsspec URI (``s3://``, ``gs://``...)."""
    location = str(source or default_catalog_path())
    try:
        data = _read_bytes(location)
    except (OSError, ImportError, ValueError) as exc:
        raise CatalogError(
            f"catalog {location!r} cannot be read ({exc}); set GPUFLOW_CATALOG to a readable CSV path or URI"
        ) from exc
    return parse_catalog(data.decode("utf-8-sig"), source=location, sha256=hashlib.sha256(data).hexdigest())


def _read_bytes(location: str) -> bytes:
    if "://" not in location or location.startswith("file://"):
        return Path(location.removeprefix("file://")).read_bytes()
    import fsspec  # remote catalogs only; an optional dependency of the pure core

    with fsspec.open(location, "rb") as handle:
        return bytes(handle.read())


def parse_catalog(text: str, *, source: str = "<memory>", sha256: str | None = None) -> Catalog:
    """Validate every row of a catalog CSV and build the index."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise CatalogError(f"catalog {source!r} must start with the header {','.join(COLUMNS)}; got {header}")
    notes: list[RowNote] = []
    offers: list[tuple[int, Offer]] = []
    seen: set[tuple[str, str, str, int, str, str | None]] = set()
    rows = 0
    for line, values in enumerate(reader, start=2):
        rows += 1
        offer = _parse_row(line, values, notes)
        if offer is None:
            continue
        key = (
            offer.cloud,
            offer.instance_type,
            offer.accelerator,
            offer.accelerator_count,
            offer.region,
            offer.zone,
        )
        if key in seen:
            notes.append(RowNote(line, "rejected", "duplicate of an earlier row", ",".join(values)))
            continue
        seen.add(key)
        offers.append((line, offer))
    flagged = _flag_suspect_tiers(offers, notes)
    info = CatalogInfo(
        source=source,
        sha256=(sha256 or hashlib.sha256(text.encode()).hexdigest())[:16],
        rows=rows,
        offers=len(flagged),
    )
    return _indexed(info, flagged, notes)


def _indexed(info: CatalogInfo, offers: Sequence[Offer], notes: Iterable[RowNote]) -> Catalog:
    grouped: dict[tuple[str, int], dict[tuple[str, str, float | None], list[Offer]]] = defaultdict(
        lambda: defaultdict(list)
    )
    counts: Counter[str] = Counter()
    max_memory: dict[str, float] = {}
    for offer in offers:
        grouped[(offer.accelerator, offer.accelerator_count)][(offer.cloud, offer.region, offer.memory_gib)].append(
            offer
        )
        counts[offer.accelerator] += 1
        if offer.memory_gib is not None:
            max_memory[offer.accelerator] = max(offer.memory_gib, max_memory.get(offer.accelerator, 0.0))
    return Catalog(
        info=info,
        offers=tuple(offers),
        notes=tuple(sorted(notes, key=lambda n: n.line)),
        by_shape={
            shape: tuple(_group(key, members) for key, members in groups.items()) for shape, groups in grouped.items()
        },
        by_accelerator=dict(counts),
        max_memory_gib=max_memory,
    )


def _group(key: tuple[str, str, float | None], members: list[Offer]) -> OfferGroup:
    cloud, region, memory = key
    priced = {capacity: _priced(members, capacity) for capacity in CapacityType}
    return OfferGroup(cloud=cloud, region=region, memory_gib=memory, size=len(members), priced=priced)


def _priced(members: list[Offer], capacity: CapacityType) -> PricedOffers:
    entries = sorted((rank_key(o, p), o) for o in members if (p := o.price(capacity)) is not None)
    return PricedOffers(prices=tuple(k[0] for k, _ in entries), entries=tuple(entries))


def _parse_row(line: int, values: list[str], notes: list[RowNote]) -> Offer | None:
    raw = ",".join(values)

    def note(action: str, reason: str) -> None:
        notes.append(RowNote(line, action, reason, raw))

    if len(values) != len(COLUMNS):
        note("rejected", f"expected {len(COLUMNS)} fields, found {len(values)}")
        return None
    (cloud, instance, accel, count_text, mem_text, vcpus, host_mem, od_text, spot_text, region, zone) = map(
        str.strip, values
    )
    if cloud not in CLOUDS:
        note("rejected", f"unknown cloud {cloud!r}")
        return None
    if not (instance and accel and region):
        note("rejected", "missing instance type, accelerator or region")
        return None
    count = _number(count_text)
    if count is None or count <= 0:
        note("rejected", "accelerator count is not a positive number")
        return None
    if not count.is_integer():
        note("rejected", "fractional accelerator (a GPU slice; Kubernetes schedules whole devices)")
        return None
    limit = unsold.rule_for(cloud, instance)
    if limit is not None and limit.effect is unsold.Effect.NOT_SOLD:
        note("rejected", f"not sold: {limit.reason}")
        return None
    price_problems: list[str] = []
    on_demand = _price(_number(od_text), "on-demand", price_problems)
    spot = _price(_number(spot_text), "spot", price_problems)
    if limit is not None and on_demand is not None:
        price_problems.append(f"on-demand price dropped, spot only: {limit.reason}")
        on_demand = None
    if on_demand is not None and spot is not None and spot > on_demand:
        price_problems.append("spot price above on-demand: spot price treated as unknown")
        spot = None
    if on_demand is None and spot is None:
        note("rejected", "no usable price")
        return None
    for problem in price_problems:
        note("repaired", problem)
    return Offer(
        cloud=cloud,
        instance_type=instance,
        accelerator=accelerators.canonical_name(accel),
        accelerator_count=int(count),
        memory_gib=_memory(accel, _number(mem_text), note),
        vcpus=_number(vcpus),
        host_memory_gib=_number(host_mem),
        region=region,
        zone=zone or None,
        on_demand_usd=on_demand,
        spot_usd=spot,
    )


def _number(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _price(value: float | None, kind: str, problems: list[str]) -> float | None:
    """A usable price, or None with the reason appended to ``problems``."""
    if value is None:
        problems.append(f"no {kind} price: not buyable as {kind}")
    elif value in PLACEHOLDER_PRICES:
        problems.append(f"placeholder {kind} price {value:g}: treated as unknown")
    elif value <= 0:
        problems.append(f"{kind} price not positive: treated as unknown")
    else:
        return value
    return None


def _memory(accel: str, catalogued: float | None, note: _Note) -> float | None:
    model = accelerators.model_for(accel)
    if model is None:
        return catalogued
    if catalogued is None:
        note("repaired", f"no memory figure: {model.memory_gib[0]:g} GiB from the {model.name} model")
        return model.memory_gib[0]
    nominal = accelerators.nominal_memory(model, catalogued)
    if nominal is None:
        note(
            "repaired",
            f"memory {catalogued:g} GiB contradicts the {model.name} model: {model.memory_gib[0]:g} GiB used",
        )
        return model.memory_gib[0]
    return nominal


def _flag_suspect_tiers(offers: list[tuple[int, Offer]], notes: list[RowNote]) -> list[Offer]:
    by_sku: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for _, offer in offers:
        if offer.on_demand_usd is not None:
            by_sku[_sku(offer)].append(offer.on_demand_usd)
    medians = {sku: statistics.median(prices) for sku, prices in by_sku.items()}
    result = []
    for line, offer in offers:
        median = medians.get(_sku(offer))
        if offer.on_demand_usd is not None and median is not None and offer.on_demand_usd < SUSPECT_TIER_RATIO * median:
            reason = f"on-demand price under {SUSPECT_TIER_RATIO:.0%} of the instance's median elsewhere (kept)"
            notes.append(RowNote(line, "flagged", reason, f"{offer.cloud},{offer.instance_type},{offer.location}"))
            offer = replace(offer, flags=(*offer.flags, SUSPECT_PRICE_TIER))
        result.append(offer)
    return result


def _sku(offer: Offer) -> tuple[str, str, str]:
    return (offer.cloud, offer.instance_type, offer.accelerator)
