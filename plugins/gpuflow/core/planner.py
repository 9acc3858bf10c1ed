"""Choose where to run: rank every catalog offer that fits a request and pick fallbacks worth failing over to.

``plan`` is a pure function of (request, catalog, now). The unit it counts is an *option*: an offer
bought as one capacity type (a ``spot-then-on-demand`` request considers two options per offer). Each
option passes the filters of ``FILTERS`` in order and a rejected one is counted under the first filter it
fails, so the counts add up and an unsatisfiable request can say which filter removed the last options.
Survivors are ranked by the request's capacity order, then effective hourly cost (spot includes the
preemption allowance), then cloud, region, zone, instance type and accelerator: the same input always
gives the same plan. A later capacity type keeps a share of the fallbacks (``_share_slots``), so a
``spot-then-on-demand`` plan always holds on-demand options when the catalog has any.

A request with ``deadline_hours`` drops the spot options of every cloud where the deadline's slack over
``estimated_hours`` cannot absorb one more preemption there (``gpuflow.core.deadline.initial_capacity``). They are
dropped, not ranked after on-demand: as fallbacks they would be bought exactly when on-demand had failed, and one
preemption then misses the deadline that the run's own supervisor would keep on on-demand.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any

from gpuflow.core import accelerators, cost
from gpuflow.core.catalog import (
    SUSPECT_PRICE_TIER,
    CapacityType,
    Catalog,
    CatalogInfo,
    Offer,
    OfferGroup,
    PricedOffers,
    RankKey,
)
from gpuflow.core.deadline import DeadlineDecision, initial_capacity, overheads_for
from gpuflow.core.errors import RequestError, UnsatisfiableRequest
from gpuflow.core.request import Block, PlanRequest

# Filters in the order they apply; the names are the keys of ``Plan.rejected``.
ACCELERATOR = "accelerator"
ACCELERATOR_COUNT = "accelerator_count"
UNSUPPORTED = "unsupported"  # accelerators gpuflow cannot train and serve on (``accelerators.unsupported_reason``)
MEMORY = "min_memory_gib"
CLOUD = "clouds"
DEADLINE = "deadline_hours"  # spot options on a cloud where the deadline cannot absorb a preemption
REGION = "regions"
NO_CLUSTER = "no_cluster"
PRICE_UNKNOWN = "price_unknown"
BLOCKED = "blocked"
MAX_HOURLY = "max_hourly_usd"
BUDGET = "budget_usd"
FILTERS = (
    ACCELERATOR,
    ACCELERATOR_COUNT,
    UNSUPPORTED,
    MEMORY,
    CLOUD,
    DEADLINE,
    REGION,
    NO_CLUSTER,
    PRICE_UNKNOWN,
    BLOCKED,
    MAX_HOURLY,
    BUDGET,
)

_Entry = tuple[RankKey, Offer]


@dataclass(frozen=True, slots=True)
class Choice:
    """An offer bought as one capacity type, priced for the whole pool."""

    offer: Offer
    capacity_type: CapacityType
    nodes: int
    hourly_usd: float
    effective_hourly_usd: float

    def to_dict(self) -> dict[str, Any]:
        o = self.offer
        return {
            "cloud": o.cloud,
            "instance_type": o.instance_type,
            "accelerator": o.accelerator,
            "accelerator_count": o.accelerator_count,
            "memory_gib": o.memory_gib,
            "region": o.region,
            "availability_zone": o.zone,
            "capacity_type": self.capacity_type.value,
            "nodes": self.nodes,
            "hourly_usd": round(self.hourly_usd, 4),
            "effective_hourly_usd": round(self.effective_hourly_usd, 4),
            "flags": list(o.flags),
        }


@dataclass(frozen=True)
class Plan:
    """The chosen option, ordered fallbacks, the estimate and the account of what was rejected."""

    request: PlanRequest
    chosen: Choice
    fallbacks: tuple[Choice, ...]
    estimated_total_usd: float
    candidates: int
    rejected: dict[str, int]
    catalog: CatalogInfo
    warnings: tuple[str, ...]
    deadline: dict[str, DeadlineDecision] = field(default_factory=dict)  # per allowed cloud; empty without one

    @property
    def estimated_hourly_usd(self) -> float:
        return self.chosen.effective_hourly_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_dict(),
            "fallbacks": [f.to_dict() for f in self.fallbacks],
            "estimated_hourly_usd": round(self.estimated_hourly_usd, 4),
            "estimated_total_usd": round(self.estimated_total_usd, 4),
            "candidates": self.candidates,
            "rejected": self.rejected,
            "catalog": self.catalog.to_dict(),
            "warnings": list(self.warnings),
            "deadline": {cloud: decision.to_dict() for cloud, decision in self.deadline.items()},
            "request": self.request.to_dict(),
        }


def plan(
    request: PlanRequest,
    catalog: Catalog,
    *,
    now: datetime | None = None,
    clusters: Collection[tuple[str, str]] | None = None,
    zones: Mapping[tuple[str, str], Collection[str]] | None = None,
) -> Plan:
    """Rank the options that satisfy ``request``; raise ``UnsatisfiableRequest`` when none does.

    ``clusters`` lists the (cloud, region) pairs that have a cluster to add a node pool to; offers
    elsewhere are rejected as ``no_cluster``. None means every region (planning without provisioning).
    ``zones`` names, for a (cloud, region) whose cluster reaches only some zones (an EKS cluster's subnets, a
    zonal GKE cluster), the zones it can place a pool in; offers in its other zones are ``no_cluster`` too.
    """
    wanted = _accelerators(request, catalog)
    blocks = [b for b in request.blocked if b.is_active(now or datetime.now(UTC))]
    funnel = _Funnel()
    slots = request.max_fallbacks + 1
    per_capacity = [
        list(
            islice(
                _spread(
                    _filter(request, catalog, wanted, capacity, blocks, funnel, clusters, zones or {}),
                    request,
                    capacity,
                ),
                slots,
            )
        )
        for capacity in request.capacity.capacity_types
    ]
    picked = _share_slots(per_capacity, slots)
    if not picked:
        raise UnsatisfiableRequest(funnel.explain(request, wanted, catalog, clusters), funnel.rejected)
    chosen = picked[0]
    deadline = deadline_decisions(request)
    return Plan(
        request=request,
        chosen=chosen,
        fallbacks=tuple(picked[1:]),
        estimated_total_usd=cost.estimated_total_usd(chosen.effective_hourly_usd, request.estimated_hours),
        candidates=funnel.passed,
        rejected=funnel.rejected,
        catalog=catalog.info,
        warnings=_warnings(chosen) + _late_warning(chosen, deadline),
        deadline=deadline,
    )


def deadline_decisions(request: PlanRequest) -> dict[str, DeadlineDecision]:
    """What the deadline allows on each allowed cloud before any step, with ``estimated_hours`` as the work."""
    if request.deadline_hours is None:
        return {}
    return {
        cloud: initial_capacity(
            deadline_s=request.deadline_hours * 3600,
            work_s=request.estimated_hours * 3600,
            overheads=overheads_for(cloud),
        )
        for cloud in request.clouds
    }


def _spot_barred(request: PlanRequest) -> frozenset[str]:
    """The clouds whose spot options the deadline rules out."""
    decisions = deadline_decisions(request)
    return frozenset(cloud for cloud, d in decisions.items() if d.capacity is CapacityType.ON_DEMAND)


def _share_slots(per_capacity: list[list[Choice]], slots: int) -> list[Choice]:
    """The failover list across capacity types, in the request's order of preference.

    The preferred type (spot, for ``spot-then-on-demand``) comes first, but every later type keeps a third of
    the slots (at least one, where there are two or more) when it has options: a spot stockout in every
    region the spot options cover must still find on-demand capacity, which is what the request asked for.
    """
    held = min(max(1, slots // 3), slots - 1)
    guaranteed = [0] + [min(len(options), held) for options in per_capacity[1:]]
    picked: list[Choice] = []
    for index, options in enumerate(per_capacity):
        picked.extend(options[: slots - len(picked) - sum(guaranteed[index + 1 :])])
    return picked


def _accelerators(request: PlanRequest, catalog: Catalog) -> set[str]:
    """The catalog accelerators the request can use; an unknown name is a request error."""
    if request.accelerator is None:
        floor = request.min_memory_gib or 0.0
        return {a for a, memory in catalog.max_memory_gib.items() if memory >= floor}
    name = accelerators.resolve(request.accelerator, catalog.accelerators)
    if name is None:
        close = accelerators.suggestions(request.accelerator, catalog.accelerators)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        gpus = sorted(a for a in catalog.accelerators if not accelerators.is_tpu(a))
        raise RequestError(
            "accelerator", request.accelerator, f"{hint}known: {', '.join(gpus)} and TPU slices such as tpu-v5p-8"
        )
    return {name}


def _filter(
    request: PlanRequest,
    catalog: Catalog,
    wanted: set[str],
    capacity: CapacityType,
    blocks: list[Block],
    funnel: _Funnel,
    clusters: Collection[tuple[str, str]] | None,
    zones: Mapping[tuple[str, str], Collection[str]],
) -> list[tuple[OfferGroup, tuple[_Entry, ...]]]:
    """Each group's options that pass every filter for ``capacity``, counting the rejected ones."""
    total = len(catalog.offers)
    in_wanted = sum(catalog.by_accelerator[a] for a in wanted)
    funnel.drop(ACCELERATOR, total - in_wanted)
    shaped = {a: catalog.by_shape.get((a, request.count), ()) for a in sorted(wanted)}
    funnel.drop(ACCELERATOR_COUNT, in_wanted - sum(g.size for found in shaped.values() for g in found))
    unsupported = [a for a in shaped if accelerators.unsupported_reason(a) is not None]
    funnel.drop(UNSUPPORTED, sum(g.size for a in unsupported for g in shaped[a]))
    groups = [g for a, found in shaped.items() if a not in unsupported for g in found]
    min_memory = request.min_memory_gib
    nodes = request.nodes

    def pool_hourly(price: float) -> float:
        return cost.pool_hourly_usd(price, nodes)

    def total_cost(price: float) -> float:
        effective = cost.effective_hourly_usd(pool_hourly(price), capacity, request.spot_allowance)
        return cost.estimated_total_usd(effective, request.estimated_hours)

    barred = _spot_barred(request) if capacity is CapacityType.SPOT else frozenset()
    region_ok: dict[str, bool] = {}
    survivors = []
    for group in groups:
        if min_memory is not None and (group.memory_gib or 0.0) < min_memory:
            funnel.drop(MEMORY, group.size)
            continue
        if group.cloud not in request.clouds:
            funnel.drop(CLOUD, group.size)
            continue
        if group.cloud in barred:
            funnel.drop(DEADLINE, group.size)
            continue
        if group.region not in region_ok:
            region_ok[group.region] = request.allows_region(group.region)
        if not region_ok[group.region]:
            funnel.drop(REGION, group.size)
            continue
        if clusters is not None and (group.cloud, group.region) not in clusters:
            funnel.drop(NO_CLUSTER, group.size)
            continue
        priced = group.priced[capacity]
        funnel.drop(PRICE_UNKNOWN, group.size - len(priced.prices))
        # Zones are per offer and only priced offers are listed per capacity type, so an unpriced offer in a
        # zone the cluster does not reach stays counted as price_unknown; the counts still add up.
        reachable = zones.get((group.cloud, group.region))
        if reachable is not None:
            priced = _only(priced, partial(_reaches, frozenset(reachable)), funnel, NO_CLUSTER)
        if blocks:
            priced = _only(priced, lambda o: not any(b.matches(o, capacity) for b in blocks), funnel, BLOCKED)
        if not priced.prices:
            continue
        funnel.seen(MAX_HOURLY, pool_hourly(priced.prices[0]))
        affordable = len(priced.prices)
        if request.max_hourly_usd is not None:
            affordable = bisect_right(priced.prices, request.max_hourly_usd, key=pool_hourly)
            funnel.drop(MAX_HOURLY, len(priced.prices) - affordable)
        within_budget = affordable
        if affordable:
            funnel.seen(BUDGET, total_cost(priced.prices[0]))
            if request.budget_usd is not None:
                within_budget = bisect_right(priced.prices, request.budget_usd, hi=affordable, key=total_cost)
                funnel.drop(BUDGET, affordable - within_budget)
        if within_budget:
            funnel.passed += within_budget
            survivors.append((group, priced.entries[:within_budget]))
    return survivors


def _reaches(zones: frozenset[str], offer: Offer) -> bool:
    """Whether a cluster restricted to ``zones`` can place the offer (a zoneless one goes where it can)."""
    return offer.zone is None or offer.zone in zones


def _only(priced: PricedOffers, keep: Callable[[Offer], bool], funnel: _Funnel, reason: str) -> PricedOffers:
    """The offers ``keep`` accepts, still cheapest first; the others are counted as rejected for ``reason``."""
    kept = tuple(entry for entry in priced.entries if keep(entry[1]))
    funnel.drop(reason, len(priced.entries) - len(kept))
    return PricedOffers(prices=tuple(key[0] for key, _ in kept), entries=kept)


def _spread(
    survivors: list[tuple[OfferGroup, tuple[_Entry, ...]]], request: PlanRequest, capacity: CapacityType
) -> Iterator[Choice]:
    """Options in failover order: each round takes the next cheapest option of every (cloud, region).

    Stockouts and quotas strike a region far more often than one zone, so one zone in each of ten
    regions is worth more as fallbacks than ten zones of one region. Round 0 yields the cheapest option
    of each region, cheapest region first (so the first option is the cheapest overall); round 1 the
    second cheapest of each, and so on.
    """
    by_region: dict[tuple[str, str], list[tuple[_Entry, ...]]] = {}
    for group, entries in survivors:
        by_region.setdefault((group.cloud, group.region), []).append(entries)
    streams = [heapq.merge(*lists) for lists in by_region.values()]
    while streams:
        heads = [(entry, stream) for stream in streams if (entry := next(stream, None)) is not None]
        heads.sort(key=lambda head: head[0][0])
        for (key, offer), _ in heads:
            hourly = cost.pool_hourly_usd(key[0], request.nodes)
            effective = cost.effective_hourly_usd(hourly, capacity, request.spot_allowance)
            yield Choice(offer, capacity, request.nodes, hourly, effective)
        streams = [stream for _, stream in heads]


def _late_warning(chosen: Choice, deadline: dict[str, DeadlineDecision]) -> tuple[str, ...]:
    """A deadline the chosen option's cloud cannot meet even on on-demand is planned for, but said."""
    decision = deadline.get(chosen.offer.cloud)
    if decision is None or decision.on_time:
        return ()
    return (f"deadline_hours is likely missed on {chosen.offer.cloud}: {decision.reason}",)


def _warnings(chosen: Choice) -> tuple[str, ...]:
    if SUSPECT_PRICE_TIER not in chosen.offer.flags:
        return ()
    o = chosen.offer
    return (
        f"{o.cloud} {o.instance_type} in {o.location} is priced far below the same instance elsewhere; "
        "the catalog may list a different SKU there. Check the price before relying on the estimate.",
    )


class _Funnel:
    """Counts of rejected options per filter, and the cheapest price seen at the cost filters."""

    def __init__(self) -> None:
        self.rejected: dict[str, int] = {}
        self.cheapest: dict[str, float] = {}
        self.passed = 0

    def drop(self, name: str, count: int) -> None:
        if count:
            self.rejected[name] = self.rejected.get(name, 0) + count

    def seen(self, name: str, usd: float) -> None:
        self.cheapest[name] = min(usd, self.cheapest.get(name, usd))

    def explain(
        self,
        request: PlanRequest,
        wanted: set[str],
        catalog: Catalog,
        clusters: Collection[tuple[str, str]] | None,
    ) -> str:
        """Which filter removed the last options, in terms of the request's own fields."""
        if not self.rejected:
            return "the catalog has no offers"
        last = max(self.rejected, key=FILTERS.index)
        reached = sum(n for f, n in self.rejected.items() if FILTERS.index(f) >= FILTERS.index(last))
        what = f"{reached} offers match {_shape(request, wanted)}"
        if last == ACCELERATOR:
            largest = max(catalog.max_memory_gib.items(), key=lambda am: am[1])
            return (
                f"no accelerator has min_memory_gib>={request.min_memory_gib:g}; "
                f"the largest is {largest[0]} with {largest[1]:g} GiB"
            )
        if last == ACCELERATOR_COUNT:
            counts = sorted({c for (a, c) in catalog.by_shape if a in wanted})
            return f"no offer of {' or '.join(sorted(wanted))} has count={request.count}; offered counts: {counts}"
        messages = {
            UNSUPPORTED: f"{what} but gpuflow cannot run on them: {_unsupported(wanted)}",
            MEMORY: f"{what} but none has min_memory_gib>={request.min_memory_gib or 0:g} per accelerator",
            CLOUD: f"{what} but none is on clouds={list(request.clouds)}",
            REGION: f"{what} on clouds={list(request.clouds)} but none is in regions={list(request.regions)}",
            NO_CLUSTER: f"{what} but none is in a region (and zone) a configured cluster reaches "
            f"({_cluster_list(clusters)})",
            PRICE_UNKNOWN: f"{what} but none has a known {request.capacity.value} price",
            BLOCKED: f"{what} but all are blocked after earlier failures ({len(request.blocked)} blocks)",
        }
        if last in messages:
            return messages[last]
        if last == DEADLINE:
            return f"{what} but {_too_tight(request)}"
        if last == MAX_HOURLY:
            return (
                f"{what} but all cost more than max_hourly_usd={request.max_hourly_usd:g}; "
                f"cheapest is {self.cheapest[MAX_HOURLY]:.2f}"
            )
        return (
            f"{what} but all exceed budget_usd={request.budget_usd:g} over "
            f"estimated_hours={request.estimated_hours:g}; cheapest estimate is {self.cheapest[BUDGET]:.2f}"
        )


def _too_tight(request: PlanRequest) -> str:
    """Why the deadline left no spot option, with each cloud's margin, and what to change."""
    spare = (request.deadline_hours or 0.0) - request.estimated_hours
    margins = ", ".join(
        f"{cloud} {overheads_for(cloud).spot_margin_s / 60:.0f} min" for cloud in sorted(_spot_barred(request))
    )
    return (
        f"deadline_hours={request.deadline_hours:g} leaves {spare * 60:.0f} min beyond estimated_hours="
        f"{request.estimated_hours:g}, less than spot needs to absorb one more preemption ({margins}); allow "
        "on-demand (capacity=spot-then-on-demand) or set a later deadline"
    )


def _unsupported(wanted: set[str]) -> str:
    return "; ".join(f"{a}: {reason}" for a in sorted(wanted) if (reason := accelerators.unsupported_reason(a)))


def _cluster_list(clusters: Collection[tuple[str, str]] | None) -> str:
    return ", ".join(sorted(f"{cloud}/{region}" for cloud, region in clusters or ()))


def _shape(request: PlanRequest, wanted: set[str]) -> str:
    what = "/".join(sorted(wanted)) if request.accelerator else f">={request.min_memory_gib:g}GiB"
    nodes = f" on {request.nodes} nodes" if request.nodes > 1 else ""
    return f"{what}x{request.count}{nodes}"
