"""A brute-force planner: checks every offer of the catalog naively. The reference the real one must match."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from fnmatch import fnmatchcase

from gpuflow.core import accelerators, cost
from gpuflow.core.catalog import CapacityType, Catalog
from gpuflow.core.deadline import initial_capacity, overheads_for
from gpuflow.core.request import PlanRequest


def oracle(
    request: PlanRequest,
    catalog: Catalog,
    now: datetime,
    clusters: Collection[tuple[str, str]] | None = None,
) -> tuple[int, float] | None:
    """(capacity rank, effective hourly USD) of the best option, by checking every offer naively."""
    wanted = accelerators.resolve(request.accelerator, catalog.accelerators) if request.accelerator else None
    best: tuple[int, float] | None = None
    for rank, capacity in enumerate(request.capacity.capacity_types):
        for offer in catalog.offers:
            price = offer.price(capacity)
            if (
                (wanted is not None and offer.accelerator != wanted)
                or offer.accelerator_count != request.count
                or accelerators.unsupported_reason(offer.accelerator) is not None
                or (request.min_memory_gib is not None and (offer.memory_gib or 0) < request.min_memory_gib)
                or offer.cloud not in request.clouds
                or (capacity is CapacityType.SPOT and too_tight_for_spot(request, offer.cloud))
                or not any(fnmatchcase(offer.region, p) for p in request.regions)
                or (clusters is not None and (offer.cloud, offer.region) not in clusters)
                or price is None
                or any(b.is_active(now) and b.matches(offer, capacity) for b in request.blocked)
            ):
                continue
            hourly = cost.pool_hourly_usd(price, request.nodes)
            effective = cost.effective_hourly_usd(hourly, capacity, request.spot_allowance)
            if request.max_hourly_usd is not None and hourly > request.max_hourly_usd:
                continue
            if request.budget_usd is not None and effective * request.estimated_hours > request.budget_usd:
                continue
            if best is None or (rank, effective) < best:
                best = (rank, effective)
    return best


def too_tight_for_spot(request: PlanRequest, cloud: str) -> bool:
    """Whether the request's deadline leaves too little slack on ``cloud`` for one more preemption."""
    if request.deadline_hours is None:
        return False
    decision = initial_capacity(
        deadline_s=request.deadline_hours * 3600, work_s=request.estimated_hours * 3600, overheads=overheads_for(cloud)
    )
    return decision.capacity is CapacityType.ON_DEMAND
