"""``make demo``: run gpu_train_and_serve end to end on the emulator, with real training and real vLLM.

Starts the emulator (six clusters, EKS/GKE/AKS APIs), points gpuflow's Airflow connections at it, runs the
DAG in Airflow (``dag.test`` on the checkout's own SQLite metadata DB), then prints a summary and how many
of the run's resources are still on the emulator (counted from its state, not assumed), and stops the
emulator and everything it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".emulator" / "demo"
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


def start_emulator() -> Any:
    from gpuflow_emulator.testing import EmulatorProcess, free_port

    default = yaml.safe_load((ROOT / "include" / "emulator" / "default.yaml").read_text())
    scenario = STATE / "scenario.yaml"
    STATE.mkdir(parents=True, exist_ok=True)
    scenario.write_text((ROOT / "include" / "emulator" / "scenarios" / "default.yaml").read_text())
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": str(scenario)}
    extra = {"clusters": default["clusters"], "clouds": clouds, "runtimes": default["runtimes"]}
    return EmulatorProcess.start(STATE, extra=extra)


def summary(run: Any, emulator: Any, seconds: float) -> list[str]:
    from gpuflow.core import naming

    results = {ti.task_id: ti for ti in run.get_task_instances()}

    def xcom(task_id: str) -> Any:
        ti = results.get(task_id)
        return ti.xcom_pull(task_ids=task_id) if ti is not None and ti.state == "success" else None

    lines = [f"run:            {run.run_id} -> {run.state} in {seconds:.0f} s"]
    planned = xcom("plan")
    if planned:
        chosen = planned["plan"]["chosen"]
        lines.append(
            f"plan:           {chosen['cloud']}/{chosen['region']} {chosen['instance_type']} "
            f"{chosen['accelerator']}x{chosen['accelerator_count']} {chosen['capacity_type']} "
            f"{chosen['hourly_usd']:.2f} USD/h ({planned['plan']['candidates']} options considered)"
        )
    pool = xcom("wait_node_pool")
    if pool:
        failovers = sum(1 for a in pool["attempts"] if "accepted" not in a)
        lines.append(f"node pool:      {pool['cluster']['name']}/{pool['pool']['name']} ({failovers} failover(s))")
    smoke = xcom("smoke_test")
    if smoke:
        lines.append(f"endpoint says:  {smoke['completion_text'].strip()[:100]!r}")
    bench = xcom("benchmark")
    if bench:
        ttft, tpot = bench["ttft"], bench["tpot"]
        lines.append(
            f"benchmark:      {bench['completed']} requests ({bench['failed']} failed), "
            f"{bench['output_throughput']:.1f} output tok/s, TTFT p50 {ttft['median_ms']:.0f} ms, "
            f"TPOT p50 {tpot['median_ms']:.1f} ms"
        )
    cost = xcom("cost_report")
    if cost:
        lines.append(f"cost:           {cost['cost_usd']:.4f} USD actual vs {cost['estimated_usd']:.4f} USD estimated")
    failed = [task for task, ti in results.items() if ti.state not in ("success", "skipped")]
    if failed:
        lines.append(f"failed tasks:   {', '.join(sorted(failed))}")
    left = emulator.labelled(naming.RUN_LABEL, naming.run_key(run.dag_id, run.run_id))
    lines.append(f"leaked resources: {len(left)}" + (f" ({', '.join(left)})" if left else ""))
    return lines


def main() -> int:
    from gpuflow_emulator.connections import airflow_environment

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    with start_emulator() as emulator:
        os.environ.update(airflow_environment(emulator.clouds()))
        os.environ.setdefault("GPUFLOW_POLL_INTERVAL_S", "2")
        print(f"==> emulator at {emulator.url}; clouds {emulator.clouds()}", flush=True)
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(ROOT / "dags" / "gpu_train_and_serve.py")).dags["gpu_train_and_serve"]
        print(f"==> triggering gpu_train_and_serve with {CONF}", flush=True)
        started = time.monotonic()
        run = dag.test(run_conf=CONF)
        lines = summary(run, emulator, time.monotonic() - started)
    print("\n==> summary\n" + "\n".join(lines))
    return 0 if run.state == "success" and lines[-1] == "leaked resources: 0" else 1


if __name__ == "__main__":
    sys.exit(main())
