"""``make demo``: gpu_train_and_serve end to end on running Airflow and the emulator, with real training and vLLM.

Starts the emulator (six clusters, EKS/GKE/AKS APIs, the clouds' object stores) and Airflow's own components
(api-server, scheduler, dag-processor, triggerer; LocalExecutor on ``.airflow/airflow.db``, or the database in
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``), triggers the DAG through the REST API, prints progress as tasks
change state, then a summary whose last line counts the run's resources still on the emulator (from its state,
not assumed). The model is trained into the bucket of the cluster the run lands on and the endpoint's init
container downloads it from there (the summary says where); pods do not see ``AIRFLOW_HOME``. Everything it
started is stopped at the end, unless ``--keep-running`` is given.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from scripts import stop_signals
from scripts.airflow_stack import AirflowStack, StackError

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".emulator" / "demo"
SCENARIOS = ROOT / "include" / "emulator" / "scenarios"
DAG_ID = "gpu_train_and_serve"
CONF: dict[str, Any] = {
    "accelerator": "L4",
    "count": 1,
    "capacity": "spot-then-on-demand",
    "job_name": "demo",
    "dataset_uri": str(ROOT / "include" / "training" / "data" / "corpus.txt"),
    "served_model_name": "gpuflow-tiny",
    "max_model_len": 256,
    "benchmark_requests": 20,
    "benchmark_rate": 4.0,
}
LOG_TAIL_LINES = 40
RECOVERY_LINE = re.compile(r"recovery \d+/\d+: .*")  # gpuflow.core.recovery.recovery_line

XCom = Callable[[str], Any]


def start_emulator(home: Path, scenario_name: str, state: Path = STATE) -> tuple[Any, Any]:
    """The emulator with the default config's clusters and runtimes under scenario ``scenario_name``, on free ports,
    starting the object stores itself, and hiding Airflow's ``home`` from pods; returns it and the stores' settings.
    ``state``: the emulator's own directory."""
    from gpuflow_emulator.stores import StoresConfig
    from gpuflow_emulator.testing import EmulatorProcess, free_port

    default = yaml.safe_load((ROOT / "include" / "emulator" / "default.yaml").read_text())
    scenario = state / "scenario.yaml"
    state.mkdir(parents=True, exist_ok=True)
    scenario.write_text(scenario_file(scenario_name).read_text())
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": str(scenario)}
    stores = StoresConfig(free_port(), free_port(), free_port())
    extra = {
        "clusters": default["clusters"],
        "clouds": clouds,
        "runtimes": default["runtimes"],
        "images": default["images"],
        "device_plugins": default["device_plugins"],  # without the plugin table AKS nodes would offer no GPU
        "auth": default["auth"],  # who the EKS and Entra AKS clusters let in
        "object_stores": {**stores.to_json(), "start": True},
        "worker_paths": [str(home)],
    }
    return EmulatorProcess.start(state, extra=extra), stores


def scenario_file(name: str) -> Path:
    """``include/emulator/scenarios/NAME.yaml``; an unknown name is an error listing the scenarios there."""
    path = SCENARIOS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
        raise SystemExit(f"SCENARIO={name!r}: no {path.relative_to(ROOT)}; use one of: {known}")
    return path


def api_port(wanted: int) -> int:
    """``wanted`` when it is free, else any free port (a second demo, or another Airflow on 8080)."""
    from gpuflow_emulator.testing import free_port

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


# -- what a finished task has to say -----------------------------------------------------------------------------


def plan_line(planned: dict[str, Any]) -> str:
    chosen = planned["plan"]["chosen"]
    return (
        f"{chosen['cloud']}/{chosen['region']} {chosen['instance_type']} "
        f"{chosen['accelerator']}x{chosen['accelerator_count']} {chosen['capacity_type']} "
        f"{chosen['hourly_usd']:.2f} USD/h ({planned['plan']['candidates']} options considered)"
    )


def pool_line(pool: dict[str, Any]) -> str:
    failovers = [a for a in pool["attempts"] if "accepted" not in a]
    lines = [f"{pool['cluster']['name']}/{pool['pool']['name']} ready ({len(failovers)} failover(s))"]
    return "; ".join(lines + failovers)


def answer_line(smoke: dict[str, Any]) -> str:
    return repr(smoke["completion_text"].strip()[:100])


def benchmark_line(bench: dict[str, Any]) -> str:
    ttft, tpot = bench["ttft"], bench["tpot"]
    return (
        f"{bench['completed']} requests ({bench['failed']} failed), {bench['output_throughput']:.1f} output tok/s, "
        f"TTFT p50 {ttft['median_ms']:.0f} ms, TPOT p50 {tpot['median_ms']:.1f} ms"
    )


def cost_line(cost: dict[str, Any]) -> str:
    line = f"{cost['cost_usd']:.4f} USD actual vs {cost['estimated_usd']:.4f} USD estimated"
    if cost.get("recoveries"):
        line += (
            f"; {cost['segments']} pool segments, {cost['recoveries']} recovery(ies) from preemption cost "
            f"{cost['gpu_hours_lost']:.4f} GPU-hours ({cost['seconds_lost']:.0f} s without training or serving)"
        )
    if cost.get("open"):
        line += f"; so far: {cost['open']} entry(ies) open until the janitor reclaims the pool"
    return line


def train_line(pool: dict[str, Any]) -> str:
    choice = pool["choice"]
    return f"finished on {choice['cloud']}/{choice['region']} {choice['instance_type']} ({choice['capacity_type']})"


def model_line(deployed: dict[str, Any]) -> str:
    return f"{deployed['model']} (trained there; the endpoint's init container copies it with rclone)"


def endpoint_line(endpoint: dict[str, Any]) -> str:
    return f"vLLM Service {endpoint['namespace']}/{endpoint['name']} on cluster {endpoint['cluster']} is serving"


DETAILS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "plan": ("plan", plan_line),
    "wait_node_pool": ("node pool", pool_line),
    "train": ("training", train_line),
    "deploy_endpoint": ("model", model_line),
    "wait_endpoint": ("endpoint", endpoint_line),
    "smoke_test": ("endpoint says", answer_line),
    "benchmark": ("benchmark", benchmark_line),
    "cost_report": ("cost", cost_line),
}


def detail(task_id: str, value: Any) -> str:
    """What a task's XCom says, in one line; an unexpected shape is shown raw rather than stopping the demo."""
    try:
        return DETAILS[task_id][1](value)
    except (KeyError, TypeError, ValueError):
        return repr(value)[:200]


def summary(state: str, seconds: float, xcom: XCom, failed: list[str], left: list[str]) -> list[str]:
    lines = [f"{'run':<17} {state} in {seconds:.0f} s"]
    for task_id, (title, _) in DETAILS.items():
        value = xcom(task_id)
        if value:
            lines.append(f"{title:<17} {detail(task_id, value)}")
    if failed:
        lines.append(f"{'failed tasks':<17} {', '.join(sorted(failed))}")
    lines.append(f"leaked resources: {len(left)}" + (f" ({', '.join(left)})" if left else ""))
    return lines


# -- the run ----------------------------------------------------------------------------------------------------


def follow(airflow: AirflowStack, run_id: str, started: float) -> str:
    """Print each task's state changes, and what a task found as soon as it succeeds; returns the run state."""

    recoveries: set[str] = set()

    def progress(ti: dict[str, Any]) -> None:
        task_id, state = ti["task_id"], ti.get("state")
        if state is None:
            return
        took = f" after {ti['duration']:.0f} s" if ti.get("duration") and state in ("success", "failed") else ""
        print(f"[{time.monotonic() - started:6.0f} s] {task_id:<17} {state}{took}", flush=True)
        if task_id == "train":  # a preemption and its recovery show as state changes of train: say what happened
            log = airflow.task_log(DAG_ID, run_id, task_id, max(1, ti.get("try_number") or 1))
            for line in recovery_lines(log):
                if line not in recoveries:
                    recoveries.add(line)
                    print(f"{'':>10} {line}", flush=True)
        if state == "success" and task_id in DETAILS:
            value = airflow.xcom(DAG_ID, run_id, task_id)
            if value:
                print(f"{'':>10} {DETAILS[task_id][0]}: {detail(task_id, value)}", flush=True)

    return airflow.follow(DAG_ID, run_id, on_change=progress, within_s=3600)


def recovery_lines(log: str) -> list[str]:
    """The train task's one line per recovery (``recovery N/M: ...``), without the log prefix."""
    return [found[0] for found in map(RECOVERY_LINE.search, log.splitlines()) if found]


def print_failures(airflow: AirflowStack, run_id: str, failed: list[dict[str, Any]]) -> None:
    for ti in failed:
        log = airflow.task_log(DAG_ID, run_id, ti["task_id"], max(1, ti.get("try_number") or 1))
        tail = "\n".join(log.splitlines()[-LOG_TAIL_LINES:])
        print(f"\n==> {ti['task_id']} failed; last {LOG_TAIL_LINES} log lines:\n{tail}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-running", action="store_true", help="leave Airflow and the emulator up for the UI")
    parser.add_argument("--port", type=int, default=8080, help="the API server / UI port (default 8080)")
    parser.add_argument(
        "--scenario",
        default="default",
        help="what the emulated clouds do (include/emulator/scenarios/NAME.yaml), e.g. spot-preemption",
    )
    args = parser.parse_args()
    stop_signals.install()  # a closed terminal or a CI timeout stops what the demo started, as Ctrl-C does

    from gpuflow_emulator.connections import airflow_environment
    from gpuflow_emulator.stores import worker_env

    from gpuflow.core import naming

    began = time.monotonic()
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow"))
    emulator, stores = start_emulator(home, args.scenario)
    with emulator:
        print(f"==> emulator at {emulator.url}; clouds {emulator.clouds()}", flush=True)
        print(f"==> object stores: S3 {stores.s3_url}, GCS {stores.gcs_url}, Azure {stores.azure_url}", flush=True)
        # The worker writes benchmark reports beside the model: S3 through its AWS connection, GCS and Azure with
        # the stores' endpoints (and Azurite's key) in its environment.
        env = {**airflow_environment(emulator.clouds(), stores), **worker_env(stores), "GPUFLOW_POLL_INTERVAL_S": "2"}
        print(f"==> starting Airflow (api-server, scheduler, dag-processor, triggerer) in {home}", flush=True)
        database = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        with AirflowStack.start(home, port=api_port(args.port), env=env, database_url=database) as airflow:
            print(
                f"==> Airflow healthy after {time.monotonic() - began:.0f} s; UI {airflow.url} "
                f"(login admin / {airflow.passwords['admin']})",
                flush=True,
            )
            airflow.wait_for_dag(DAG_ID)
            airflow.unpause(DAG_ID)
            answer = airflow.trigger(DAG_ID, CONF)
            if answer.status_code != 200:
                raise StackError(f"trigger refused: {answer.status_code} {answer.text}")
            run_id = answer.json()["dag_run_id"]
            print(f"==> triggered {DAG_ID} run {run_id} through the REST API with {CONF}", flush=True)
            started = time.monotonic()
            state = follow(airflow, run_id, started)
            instances = airflow.task_instances(DAG_ID, run_id)
            failed = [ti for ti in instances if ti.get("state") not in ("success", "skipped")]
            if failed:
                print_failures(airflow, run_id, failed)
            left = emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id))
            lines = summary(
                state,
                time.monotonic() - started,
                lambda task_id: airflow.xcom(DAG_ID, run_id, task_id),
                [ti["task_id"] for ti in failed],
                left,
            )
            peak = airflow.peak_memory_bytes / 2**30
            print(f"==> Airflow components' peak memory (PSS): {peak:.2f} GiB", flush=True)
            if args.keep_running:
                print(f"==> still running: UI {airflow.url} (admin / {airflow.passwords['admin']}); Ctrl-C stops all")
                wait_for_interrupt()
            print("==> stopping Airflow and the emulator", flush=True)
    print(f"\n==> summary (demo took {time.monotonic() - began:.0f} s)\n" + "\n".join(lines))
    return 0 if state == "success" and not left else 1


def wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
