"""Command line: ``python -m gpuflow plan ...`` ranks the catalog for a request without Airflow.

Exit status: 0 planned, 2 invalid request, 3 no offer satisfies the request, 4 catalog unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gpuflow.core.catalog import load_catalog
from gpuflow.core.errors import CatalogError, RequestError, UnsatisfiableRequest
from gpuflow.core.explain import format_plan
from gpuflow.core.planner import plan
from gpuflow.core.request import CapacityPreference, PlanRequest
from gpuflow.core.settings import CATALOG_ENV, catalog_source

EXIT_INVALID, EXIT_UNSATISFIABLE, EXIT_CATALOG = 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpuflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    planner = commands.add_parser("plan", help="choose the cheapest offer for a request, with fallbacks")
    planner.add_argument("--accelerator", help="accelerator name, e.g. H100, A100-80GB, L4, tpu-v5p-8")
    planner.add_argument("--min-memory-gib", help="minimum memory per accelerator (instead of, or with, a name)")
    planner.add_argument("--count", help="accelerators per node (default 1)")
    planner.add_argument("--nodes", help="nodes in the pool (default 1)")
    planner.add_argument(
        "--capacity", help=f"one of {', '.join(c.value for c in CapacityPreference)} (default on-demand)"
    )
    planner.add_argument("--clouds", help="comma-separated subset of aws,gcp,azure (default all)")
    planner.add_argument("--regions", help="comma-separated region globs, e.g. 'us-*,europe-west4' (default all)")
    planner.add_argument("--max-hourly-usd", help="most the whole pool may cost per hour")
    planner.add_argument("--budget-usd", help="most the whole job may cost over --estimated-hours")
    planner.add_argument("--estimated-hours", help="how long the pool is held (default 1)")
    planner.add_argument("--spot-allowance", help="extra share of GPU-hours budgeted for spot preemption (0.25)")
    planner.add_argument("--max-fallbacks", help="fallback offers to list (default 8)")
    planner.add_argument(
        "--block", action="append", dest="blocked", help="cloud[/region[/zone[/instance]]] to skip; repeatable"
    )
    planner.add_argument("--catalog", help=f"catalog CSV path or URI (default ${CATALOG_ENV} or the shipped one)")
    planner.add_argument("--output", choices=("table", "json"), default="table")
    report = commands.add_parser("catalog", help="load the catalog and print what was rejected or repaired")
    report.add_argument("--catalog", help=f"catalog CSV path or URI (default ${CATALOG_ENV} or the shipped one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        catalog = load_catalog(args.catalog or catalog_source())
        if args.command == "catalog":
            print(json.dumps({"catalog": catalog.info.to_dict(), "report": catalog.report()}, indent=2))
            return 0
        fields = {k: v for k, v in vars(args).items() if k not in ("command", "catalog", "output")}
        result = plan(PlanRequest.from_mapping(fields), catalog)
    except RequestError as exc:
        print(f"error: invalid request: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except UnsatisfiableRequest as exc:
        print(f"error: no offer satisfies the request: {exc}", file=sys.stderr)
        return EXIT_UNSATISFIABLE
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CATALOG
    print(json.dumps(result.to_dict(), indent=2) if args.output == "json" else format_plan(result))
    return 0
