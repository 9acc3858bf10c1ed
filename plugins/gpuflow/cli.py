"""Command line: ``python -m gpuflow plan ...`` ranks the catalog for a request without Airflow;
``state-migrate`` brings the state database up to date before anything else uses it.

Exit status: 0 done, 2 invalid request, 3 no offer satisfies the request, 4 catalog unreadable,
5 benchmark: no request succeeded, 6 state database not migrated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gpuflow.core.catalog import load_catalog
from gpuflow.core.errors import CatalogError, RequestError, UnsatisfiableRequest
from gpuflow.core.explain import format_plan
from gpuflow.core.planner import plan
from gpuflow.core.request import CapacityPreference, PlanRequest
from gpuflow.core.settings import CATALOG_ENV, STATE_URL_ENV, catalog_source, state_url
from gpuflow.serving.benchmark import BenchmarkConfig, format_report, run_benchmark, write_report
from gpuflow.serving.client import Endpoint, OpenAIClient
from gpuflow.state.schema import StateSchemaError, migrate
from gpuflow.state.store import engine_for

EXIT_INVALID, EXIT_UNSATISFIABLE, EXIT_CATALOG, EXIT_NO_SUCCESS, EXIT_STATE = 2, 3, 4, 5, 6


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
    planner.add_argument(
        "--deadline-hours", help="finish within this many hours of the start; spot only where a preemption fits"
    )
    planner.add_argument("--spot-allowance", help="extra share of GPU-hours budgeted for spot preemption (0.25)")
    planner.add_argument("--max-fallbacks", help="fallback offers to list (default 8)")
    planner.add_argument(
        "--block", action="append", dest="blocked", help="cloud[/region[/zone[/instance]]] to skip; repeatable"
    )
    planner.add_argument("--catalog", help=f"catalog CSV path or URI (default ${CATALOG_ENV} or the shipped one)")
    planner.add_argument("--output", choices=("table", "json"), default="table")
    report = commands.add_parser("catalog", help="load the catalog and print what was rejected or repaired")
    report.add_argument("--catalog", help=f"catalog CSV path or URI (default ${CATALOG_ENV} or the shipped one)")
    bench = commands.add_parser("bench", help="benchmark an OpenAI-compatible endpoint like `vllm bench serve`")
    bench.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    bench.add_argument("--model", required=True, help="the served model name")
    bench.add_argument("--num-prompts", type=int, default=100)
    bench.add_argument("--rate", type=float, default=math.inf, help="requests per second (default inf: all at once)")
    bench.add_argument("--input-len", type=int, default=128, help="prompt length in words (about one token each)")
    bench.add_argument("--output-len", type=int, default=128, help="tokens to generate per request")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--header", action="append", default=[], help="'Name: value' to send, e.g. auth; repeatable")
    bench.add_argument("--out", type=Path, required=True, help="directory for benchmark.json and benchmark.png")
    migrator = commands.add_parser("state-migrate", help="create or update the state database's tables, once")
    migrator.add_argument("--url", help=f"SQLAlchemy URL of the state database (default ${STATE_URL_ENV} or SQLite)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "state-migrate":
        return _state_migrate(args.url or state_url())
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


def _bench(args: argparse.Namespace) -> int:
    try:
        config = BenchmarkConfig(
            args.model, args.num_prompts, args.rate, args.input_len, args.output_len, seed=args.seed
        )
        headers = dict(_header(h) for h in args.header)
    except RequestError as exc:
        print(f"error: invalid request: {exc}", file=sys.stderr)
        return EXIT_INVALID
    with OpenAIClient(Endpoint(args.url, headers)) as client:
        report = run_benchmark(client, config)
    json_path, png_path = write_report(report, args.out)
    print(format_report(report))
    print(f"wrote {json_path} and {png_path}")
    return 0 if report.completed else EXIT_NO_SUCCESS


def _state_migrate(url: str) -> int:
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        print(
            f"error: {STATE_URL_ENV}={url!r} is not a SQLAlchemy URL; use e.g. sqlite:////abs/path/state.db or "
            "postgresql+psycopg2://user:password@host/db",
            file=sys.stderr,
        )
        return EXIT_STATE
    try:
        done = migrate(engine_for(url))
    except StateSchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STATE
    except (SQLAlchemyError, ImportError) as exc:  # unreachable, refused, or its driver is not installed
        print(
            f"error: {STATE_URL_ENV}={shown!r}: the state database could not be migrated ({exc}); check that it is "
            "reachable, that its driver is installed and that its user may create tables",
            file=sys.stderr,
        )
        return EXIT_STATE
    print(f"state database {shown}: {'created ' + ', '.join(done) if done else 'up to date'}")
    return 0


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise RequestError("header", text, "'Name: value'")
    return name.strip(), value.strip()
