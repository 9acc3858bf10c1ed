"""The chaos suite: gpuflow on running Airflow components and the emulator, under load and under people.

``make chaos`` (``python -m bench.chaos``) starts the four Airflow components and the emulator once, then runs each
scenario and prints one row per scenario: the runs' final states, the task tries beyond the first, the node pools
alive at most (sampled every second), and what the runs left on the clouds before and after a janitor sweep.

Scenarios:
- ``concurrent``: N runs triggered at once through the REST API with a GPU limit of ``--gpu-limit`` one-GPU jobs
  (``GPUFLOW_GPU_LIMITS``): pools alive must never exceed the limit, every run must finish.
- ``mark-failed``: a run marked failed through the REST API mid-training: it must end ``failed``, nothing left.

It is a measurement, not a timing test: rows are figures for docs/figures.md; the exit status is 1 when a
scenario broke its promise (a run not ending as it should, more pools than the limit, anything left).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAG_ID = "gpu_train_and_serve"
JANITOR = "gpu_janitor"


@dataclass
class Row:
    scenario: str
    states: dict[str, int]
    retried: int
    pools_at_most: int
    left_before_janitor: int
    left_after_janitor: int
    seconds: float
    kept_promise: bool

    def line(self) -> str:
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items()))
        return (
            f"{self.scenario:<12} {states:<22} {self.retried:>7} {self.pools_at_most:>10} "
            f"{self.left_before_janitor:>12} {self.left_after_janitor:>11} {self.seconds:>6.0f}  "
            f"{'yes' if self.kept_promise else 'NO'}"
        )


HEADER = (
    f"{'scenario':<12} {'final states':<22} {'retried':>7} {'pools max':>10} {'left (runs)':>12} {'left (jan.)':>11} "
    f"{'s':>6}  kept"
)


class PoolSampler(threading.Thread):
    """Counts the emulator's live gpuflow node pools once a second, keeping the highest count."""

    def __init__(self, pools: Callable[[], list[dict[str, Any]]]) -> None:
        super().__init__(daemon=True)
        self.pools, self.most = pools, 0
        self.done = threading.Event()

    def run(self) -> None:
        from gpuflow.core import naming

        while not self.done.is_set():
            try:
                alive = [
                    p for p in self.pools() if p["labels"].get(naming.MANAGED_LABEL) == "true" and p["state"] != "GONE"
                ]
            except Exception:  # the emulator is briefly busy: sample again
                alive = []
            self.most = max(self.most, len(alive))
            self.done.wait(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="runs triggered at once (default 6)")
    parser.add_argument("--gpu-limit", type=int, default=2, help="GPUs all runs may hold at once (default 2)")
    args = parser.parse_args()

    from scripts import stop_signals

    stop_signals.install()
    with tempfile.TemporaryDirectory(prefix="gpuflow-chaos-") as directory:
        rows = run_all(Path(directory), args.runs, args.gpu_limit)
    print("\n" + HEADER + "\n" + "-" * len(HEADER))
    for row in rows:
        print(row.line())
    return 0 if all(row.kept_promise for row in rows) else 1


def run_all(state: Path, runs: int, gpu_limit: int) -> list[Row]:
    from gpuflow_emulator.connections import airflow_environment
    from gpuflow_emulator.stores import ObjectStores, StoresConfig, worker_env
    from gpuflow_emulator.testing import free_port

    from scripts.airflow_stack import AirflowStack
    from tests.support.emulated_clouds import start_emulator

    os.environ["AIRFLOW_HOME"] = str(state / "airflow")  # hidden from the emulator's pods
    stores_config = StoresConfig(free_port(), free_port(), free_port())
    stores = ObjectStores(stores_config, state / "stores")
    stores.start()
    try:
        with start_emulator(state / "emulator", "default", stores_config) as emulator:
            env = {
                **airflow_environment(emulator.clouds(), stores_config),
                **worker_env(stores_config),
                "GPUFLOW_STATE_URL": f"sqlite:///{state / 'state.db'}",
                "GPUFLOW_POLL_INTERVAL_S": "1",
                "GPUFLOW_GPU_LIMITS": f"total={gpu_limit}",
                "GPUFLOW_JANITOR_GRACE_HOURS": "0.001",
            }
            print(f"==> starting Airflow with GPUFLOW_GPU_LIMITS=total={gpu_limit}", flush=True)
            with AirflowStack.start(state / "airflow", port=free_port(), env=env) as airflow:
                airflow.wait_for_dag(DAG_ID)
                airflow.wait_for_dag(JANITOR)
                airflow.unpause(DAG_ID)
                return [concurrent(airflow, emulator, runs, gpu_limit), mark_failed(airflow, emulator)]
    finally:
        stores.stop()


def job(name: str, steps: int) -> dict[str, Any]:
    from tests.support.emulated_clouds import fake_resumable_training

    return {
        "accelerator": "L4",
        "count": 1,
        "capacity": "on-demand",
        "clouds": ["gcp"],
        "job_name": name,
        **fake_resumable_training(steps=steps),
        "served_model_name": "tiny",
        "benchmark_requests": 0,
    }


def concurrent(airflow: Any, emulator: Any, runs: int, gpu_limit: int) -> Row:
    print(f"==> concurrent: {runs} runs at once, {gpu_limit} GPUs allowed", flush=True)
    started = time.monotonic()
    sampler = PoolSampler(emulator.pools)
    sampler.start()
    run_ids = [trigger(airflow, job(f"chaos{number}", 20)) for number in range(runs)]
    states = {run_id: airflow.follow(DAG_ID, run_id, within_s=3600) for run_id in run_ids}
    sampler.done.set()
    sampler.join()
    row = measured(airflow, emulator, "concurrent", states, sampler.most, time.monotonic() - started)
    row.kept_promise = row.kept_promise and set(states.values()) == {"success"} and sampler.most <= gpu_limit
    return row


def mark_failed(airflow: Any, emulator: Any) -> Row:
    print("==> mark-failed: one run marked failed mid-training", flush=True)
    started = time.monotonic()
    sampler = PoolSampler(emulator.pools)
    sampler.start()
    run_id = trigger(airflow, job("stopped", 600))
    while next((ti["state"] for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "train"), None) != (
        "deferred"
    ):
        time.sleep(1)
    airflow.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
    states = {run_id: airflow.follow(DAG_ID, run_id, within_s=1800)}
    sampler.done.set()
    sampler.join()
    row = measured(airflow, emulator, "mark-failed", states, sampler.most, time.monotonic() - started)
    row.kept_promise = row.kept_promise and states[run_id] == "failed"
    return row


def trigger(airflow: Any, conf: dict[str, Any]) -> str:
    answer = airflow.trigger(DAG_ID, conf)
    answer.raise_for_status()
    return str(answer.json()["dag_run_id"])


def measured(airflow: Any, emulator: Any, scenario: str, states: dict[str, str], most: int, seconds: float) -> Row:
    """The row of a scenario whose runs ended: tries, and leaks before and after one janitor sweep."""
    from gpuflow.core import naming

    def left() -> int:
        return sum(len(emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id))) for run_id in states)

    tries = [
        (ti["task_id"], int(ti.get("try_number") or 1)) for run in states for ti in airflow.task_instances(DAG_ID, run)
    ]
    retried = sum(max(0, number - 1) for _, number in tries)
    if retried:
        print(
            f"    retried in {scenario}: {', '.join(sorted(task for task, number in tries if number > 1))}", flush=True
        )
    before = left()
    if before:
        airflow.unpause(JANITOR)
        janitor = airflow.trigger(JANITOR, {})
        janitor.raise_for_status()
        airflow.follow(JANITOR, janitor.json()["dag_run_id"], within_s=600)
        airflow.pause(JANITOR)
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    after = left()
    return Row(scenario, counts, retried, most, before, after, seconds, kept_promise=before == 0 and after == 0)


if __name__ == "__main__":
    sys.exit(main())
