"""The chaos suite: gpuflow on running Airflow components and the emulator, under load, under people and under
process kills, on SQLite and on PostgreSQL.

``make chaos`` (``python -m bench.chaos``) starts, for each metadata database, the four Airflow components and the
emulator once, then runs every scenario of ``bench/chaos/scenarios.py`` and prints one row per scenario and
database: the runs' final states, the task tries beyond the first, the node pools alive at most (sampled every
second), and what the runs left on the clouds before and after a janitor sweep. On PostgreSQL both Airflow's
metadata and gpuflow's state store live in a private server (``scripts/local_postgres.py``).

It is a measurement, not a timing test: rows are figures for docs/figures.md; the exit status is 1 when a
scenario broke its promise (a run not ending as it should, more pools than the limit, anything left, a fault that
could not land).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.chaos.scenarios import FAULTS, HEADER, Row, concurrent, mark_failed, process_fault

DATABASES = ("sqlite", "postgres")
# Kept short so the scheduler-kill scenario's running task is failed soon after it stops heartbeating (default 300).
HEARTBEAT_TIMEOUT_S = 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="runs triggered at once (default 6)")
    parser.add_argument("--gpu-limit", type=int, default=2, help="GPUs all runs may hold at once (default 2)")
    parser.add_argument("--db", choices=[*DATABASES, "both"], default="both", help="metadata database (default both)")
    parser.add_argument("--only", nargs="*", metavar="SCENARIO", help="run only these: concurrent, mark-failed, faults")
    args = parser.parse_args()

    from scripts import stop_signals

    stop_signals.install()
    rows: list[Row] = []
    for db in DATABASES if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="gpuflow-chaos-") as directory:
            rows += run_on(db, Path(directory), args.runs, args.gpu_limit, set(args.only or ()))
    print("\n" + HEADER + "\n" + "-" * len(HEADER))
    for row in rows:
        print(row.line())
    return 0 if all(row.kept_promise for row in rows) else 1


@contextmanager
def databases(db: str) -> Iterator[tuple[str | None, str | None]]:
    """(Airflow metadata URL, gpuflow state URL): both None on SQLite (files in the run's directory)."""
    if db == "sqlite":
        yield None, None
        return
    from gpuflow_emulator.testing import free_port

    from scripts.local_postgres import LocalPostgres

    with LocalPostgres(free_port()) as server:
        yield server.database("airflow"), server.database("gpuflow")


def run_on(db: str, state: Path, runs: int, gpu_limit: int, only: set[str]) -> list[Row]:
    from bench.stack import emulated_stack

    env = {
        "GPUFLOW_GPU_LIMITS": f"total={gpu_limit}",
        "GPUFLOW_JANITOR_GRACE_HOURS": "0.001",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    }
    with databases(db) as (metadata_url, state_url):
        print(f"==> [{db}] starting Airflow with GPUFLOW_GPU_LIMITS=total={gpu_limit}", flush=True)
        with emulated_stack(state, env, metadata_url=metadata_url, state_url=state_url) as (airflow, emulator):
            airflow.wait_for_dag("gpu_train_and_serve")
            airflow.wait_for_dag("gpu_janitor")
            airflow.unpause("gpu_train_and_serve")
            rows: list[Row] = []

            def measure(row: Row) -> None:  # each row as it comes, so a stopped suite keeps its figures
                print(f"    {row.line()}", flush=True)
                rows.append(row)

            if not only or "concurrent" in only:
                measure(concurrent(airflow, emulator, db, runs, gpu_limit))
            if not only or "mark-failed" in only:
                measure(mark_failed(airflow, emulator, db))
            if not only or "faults" in only:
                for fault in FAULTS:
                    measure(process_fault(airflow, emulator, db, fault))
            return rows


if __name__ == "__main__":
    sys.exit(main())
