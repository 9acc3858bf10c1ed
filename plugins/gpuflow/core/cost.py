"""Cost arithmetic shared by the planner (estimates) and, later, the cost report (actuals)."""

from __future__ import annotations

from gpuflow.core.catalog import CapacityType


def pool_hourly_usd(node_hourly_usd: float, nodes: int) -> float:
    """What the pool costs per hour while it is held."""
    return node_hourly_usd * nodes


def effective_hourly_usd(pool_hourly: float, capacity: CapacityType, spot_allowance: float) -> float:
    """Hourly cost including the expected re-work after preemptions, which only spot capacity suffers."""
    return pool_hourly * (1 + spot_allowance) if capacity is CapacityType.SPOT else pool_hourly


def estimated_total_usd(effective_hourly: float, hours: float) -> float:
    return effective_hourly * hours
