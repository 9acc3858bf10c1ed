"""Planner benchmark: catalog load time, plan time per request, and the speed-up over a brute-force scan.

Run: ``make bench`` (or ``.venv/bin/python bench/planner_bench.py``). Prints medians over repeated runs,
measured in this process; the brute-force oracle (tests/support/planner_oracle.py) is timed in the same
run on the same requests, so the ratio does not depend on how fast this machine is today.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuflow.core.catalog import load_catalog
from gpuflow.core.errors import UnsatisfiableRequest
from gpuflow.core.planner import plan
from gpuflow.core.request import Block, PlanRequest
from tests.support.planner_oracle import oracle

NOW = datetime(2026, 11, 29, tzinfo=UTC)
REQUESTS = {
    "H100x8 spot": PlanRequest.from_mapping({"accelerator": "H100", "count": 8, "capacity": "spot"}),
    "A100-80GBx8 on-demand x4 nodes": PlanRequest.from_mapping({"accelerator": "A100-80GB", "count": 8, "nodes": 4}),
    "L4x1 spot-then-on-demand": PlanRequest.from_mapping({"accelerator": "L4", "capacity": "spot-then-on-demand"}),
    "T4x1 us-* max 1 $/h": PlanRequest.from_mapping({"accelerator": "T4", "regions": "us-*", "max_hourly_usd": 1}),
    ">=24GiB x1 spot-then-on-demand": PlanRequest.from_mapping(
        {"min_memory_gib": 24, "capacity": "spot-then-on-demand"}
    ),
    ">=80GiB x8 budget 500 over 10 h": PlanRequest.from_mapping(
        {"min_memory_gib": 80, "count": 8, "budget_usd": 500, "estimated_hours": 10}
    ),
    "H100x8 with gcp + 2 zones blocked": PlanRequest(
        accelerator="H100",
        count=8,
        blocked=(Block("gcp"), Block("aws", zone="use1-az2"), Block("aws", zone="use2-az1")),
    ),
}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def planned(request: PlanRequest) -> object:
    try:
        return plan(request, catalog, now=NOW)
    except UnsatisfiableRequest as exc:
        return exc


if __name__ == "__main__":
    load_ms = median_ms(load_catalog, 15)
    catalog = load_catalog()
    print(f"catalog: {catalog.info.offers} offers from {catalog.info.rows} rows")
    print(f"load (parse, validate, index), median of 15: {load_ms:7.1f} ms   target < 150 ms")
    print()
    print(f"{'request':38} {'plan ms':>8} {'oracle ms':>10} {'speed-up':>9}")
    plan_times, ratios = [], []
    for name, request in REQUESTS.items():
        plan_ms = median_ms(lambda r=request: planned(r), 50)  # type: ignore[misc]
        oracle_ms = median_ms(lambda r=request: oracle(r, catalog, NOW), 5)  # type: ignore[misc]
        plan_times.append(plan_ms)
        ratios.append(oracle_ms / plan_ms)
        print(f"{name:38} {plan_ms:8.3f} {oracle_ms:10.2f} {oracle_ms / plan_ms:8.0f}x")
    print()
    print(f"plan, median over the requests: {statistics.median(plan_times):.3f} ms   target < 4 ms")
    print(f"plan, slowest request:          {max(plan_times):.3f} ms")
    print(f"speed-up over brute force, median: {statistics.median(ratios):.0f}x")
    print("reference (not measured here): SkyPilot's optimizer on this catalog, ~87 ms per request (median)")
    print(f"speed-up over that reference, median: {87 / statistics.median(plan_times):.0f}x")
