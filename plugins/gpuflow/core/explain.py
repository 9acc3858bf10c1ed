"""Human-readable account of a plan: the choice, the fallbacks and why, as a fixed-width table."""

from __future__ import annotations

from collections.abc import Sequence

from gpuflow.core.catalog import CapacityType
from gpuflow.core.planner import Choice, Plan


def format_plan(plan: Plan) -> str:
    """The choice and fallbacks as a table, then the estimate, the rejections and the catalog used."""
    request = plan.request
    rows: list[tuple[str, ...]] = [("#", "cloud", "region", "zone", "instance", "accel", "capacity", "$/h pool", "why")]
    seen_regions: set[tuple[str, str]] = set()
    for rank, choice in enumerate((plan.chosen, *plan.fallbacks)):
        rows.append(_row(rank, choice, _why(rank, choice, seen_regions)))
    lines = [
        f"Plan for {request.accelerator or f'>={request.min_memory_gib:g} GiB'} x{request.count} per node, "
        f"{request.nodes} node(s), {request.capacity.value}",
        "",
        *_table(rows),
        "",
        f"estimate: {plan.estimated_hourly_usd:.2f} USD/h effective x {request.estimated_hours:g} h "
        f"= {plan.estimated_total_usd:.2f} USD"
        + (f" (spot includes a {request.spot_allowance:.0%} preemption allowance)" if _any_spot(plan) else ""),
        f"options considered: {plan.candidates} passed; rejected: "
        + (", ".join(f"{reason}={count}" for reason, count in plan.rejected.items()) or "none"),
        f"catalog: {plan.catalog.source} (sha256 {plan.catalog.sha256}, {plan.catalog.offers} offers "
        f"from {plan.catalog.rows} rows)",
        *_deadline(plan),
    ]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def _deadline(plan: Plan) -> list[str]:
    """Per cloud, what the deadline allows and why; which clouds' spot options it left out."""
    request = plan.request
    if not plan.deadline:
        return []
    wants_spot = CapacityType.SPOT in request.capacity.capacity_types
    lines = [f"deadline: {request.deadline_hours:g} h from the start for {request.estimated_hours:g} h of work"]
    for cloud, decision in plan.deadline.items():
        left_out = wants_spot and decision.capacity is CapacityType.ON_DEMAND
        lines.append(f"  {cloud}: {decision.reason}" + (" Its spot options are left out." if left_out else ""))
    return lines


def _row(rank: int, choice: Choice, why: str) -> tuple[str, ...]:
    o = choice.offer
    return (
        str(rank),
        o.cloud,
        o.region,
        o.zone or "-",
        o.instance_type,
        f"{o.accelerator}x{o.accelerator_count}",
        choice.capacity_type.value,
        f"{choice.hourly_usd:.2f}",
        why,
    )


def _why(rank: int, choice: Choice, seen_regions: set[tuple[str, str]]) -> str:
    region = (choice.offer.cloud, choice.offer.region)
    first_in_region = region not in seen_regions
    seen_regions.add(region)
    if rank == 0:
        why = "cheapest option"
    elif first_in_region:
        why = "next cheapest region"
    else:
        why = "another zone/instance in a region above"
    return why + (" (suspect price)" if choice.offer.flags else "")


def _any_spot(plan: Plan) -> bool:
    return any(c.capacity_type is CapacityType.SPOT for c in (plan.chosen, *plan.fallbacks))


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
