"""``make bench-cost``: run the job mix, print the table, write ``cost.json`` and ``cost.png``.

The results depend only on the options (no wall-clock time in them), so a rerun rewrites the same files; the run
time is printed, not stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cost.jobs import CHECKPOINT_MINUTES, DEADLINE_FACTOR, WORK_HOURS, job_mix
from bench.cost.model import TICK_S
from bench.cost.policies import Policy
from bench.cost.policies.uniform_progress import home_region
from bench.cost.report import by_deadline, chart, summarize, table
from bench.cost.run import FALLBACKS, RECOVERIES, policies, run_all
from bench.cost.scenario import COPIES, trace_world
from bench.cost.world import ACCELERATOR, INSTANCES, World, bench_catalog
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.deadline import PLAN_RESTART_S
from gpuflow.core.settings import replacement_wait_s

RESULTS = Path(__file__).resolve().parents[1] / "results"
SEED = 17
JOBS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__)
    parser.add_argument("--seed", type=int, default=SEED, help=f"job mix and synthetic zones (default {SEED})")
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs in the mix (default {JOBS})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for cost.json and cost.png")
    parser.add_argument(
        "--clouds", default=",".join(CLOUDS), help="clouds to simulate (aws alone: only the real traces)"
    )
    parser.add_argument("--max-fallbacks", type=int, default=FALLBACKS, help="gpuflow's request (default %(default)s)")
    parser.add_argument("--max-recoveries", type=int, default=RECOVERIES, help="gpuflow's job (default %(default)s)")
    args = parser.parse_args()
    logging.getLogger("gpuflow").setLevel(logging.WARNING)  # one line per provisioning attempt otherwise

    began = time.perf_counter()
    clouds = tuple(c.strip() for c in args.clouds.split(","))
    world, made = trace_world(bench_catalog(), args.seed, clouds)
    quickest = min(o.startup_ticks for o in world.offers)
    mix = job_mix(args.jobs, seed=args.seed, trace_ticks=world.horizon // COPIES, quickest_startup=quickest)
    compared = policies(args.max_fallbacks, args.max_recoveries)
    results = run_all(world, mix.jobs, compared)
    summaries = summarize(results)
    bands = by_deadline(results)
    took = time.perf_counter() - began

    print(table(summaries))
    print(f"\n{len(mix.jobs)} jobs (seed {args.seed}, {mix.redrawn} infeasible draws redrawn) in {took:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "seed": args.seed,
        "jobs": len(mix.jobs),
        "clouds": list(clouds),
        "policies": {name: s.to_dict() for name, s in summaries.items()},
        "savings_vs_naive_by_deadline": bands,
        "model": _model(world, made, mix.redrawn, compared),
    }
    (args.out / "cost.json").write_text(json.dumps(document, indent=2) + "\n")
    synthetic = " + synthetic " + "/".join(c.upper() for c in clouds if c != "aws") if len(clouds) > 1 else ""
    title = f"{len(mix.jobs)} jobs, seed {args.seed}: {ACCELERATOR} offers on the AWS spot traces{synthetic}"
    chart(summaries, bands, args.out / "cost.png", title)
    print(f"wrote {args.out / 'cost.json'} and {args.out / 'cost.png'}")


def _model(world: World, made: dict[str, Any], redrawn: int, compared: Sequence[Policy]) -> dict[str, Any]:
    """What the figures were computed on, so a reader can tell what they mean without the code."""
    startup = {
        o.cloud: {
            "provision_s": traits(o.cloud).typical_provision_s,
            "restart_s": PLAN_RESTART_S,
            "simulated_s": o.startup_ticks * TICK_S,
        }
        for o in sorted(world.offers, key=lambda o: o.cloud)
    }
    return {
        "tick_s": TICK_S,
        "offers": {"accelerator": ACCELERATOR, "instances": INSTANCES, "count": len(world.offers)},
        "startup_per_cloud": startup,
        "replacement_wait_s": replacement_wait_s(),
        "job_mix": {
            "work_hours": WORK_HOURS,
            "work_distribution": "log-uniform",
            "deadline_factor": DEADLINE_FACTOR,
            "checkpoint_minutes": CHECKPOINT_MINUTES,
            "infeasible_draws_redrawn": redrawn,
        },
        "policies": {p.name: p.describe() for p in compared},
        "uniform_progress_region": "/".join(home_region(world)),
        "optimum": "exact: dynamic programming over ticks on the simulation's own model (bench/cost/optimum.py)",
        "lost_work": "a preemption loses the work since the last checkpoint; the SIGTERM checkpoint is not counted on",
        **made,
    }


if __name__ == "__main__":
    main()
