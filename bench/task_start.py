"""How long Airflow takes to start gpuflow's tasks, with and without the DAG files' libraries imported before Airflow
forks (``gpuflow.preload``, ``GPUFLOW_PRELOAD``).

``make bench-tasks`` (``python -m bench.task_start``) starts the four Airflow components on the emulator twice, first
with ``GPUFLOW_PRELOAD=off`` (Airflow's own behaviour: the baseline), then on, and runs the same fast pipeline run
(one-L4 on-demand job, one-line training, the vLLM double) on each. It prints, for each setting, the run's wall time,
the DAG parse every task does when it starts (from its log: "Filling up the DagBag" to "Worker startup parse
complete"), the DAG processor's last parse of ``gpu_train_and_serve.py``, and the ratios. Figures, not a test.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scripts.airflow_stack import AirflowStack

DAG_ID = "gpu_train_and_serve"
PARSE_START, PARSE_END = "Filling up the DagBag from", "Worker startup parse complete"
# A row of the DAG processor's stats table: "dags-folder  gpu_train_and_serve.py  [pid  current]  #dags  #errors
# 0.47s  2026-12-03T19:57:43"; the last duration is the figure before the time it was parsed at.
PROCESSOR_ROW = re.compile(r"gpu_train_and_serve\.py\s.*?([\d.]+)s\s+\d{4}-\d\d-\d\dT")


@dataclass
class Figures:
    setting: str
    run_s: float
    task_parses_s: list[float]
    processor_parse_s: float | None

    def line(self) -> str:
        parses = self.task_parses_s
        processor = f"{self.processor_parse_s:.2f}" if self.processor_parse_s is not None else "-"
        return (
            f"{self.setting:<8} {self.run_s:>8.1f} {len(parses):>6} {statistics.median(parses):>12.2f} "
            f"{sum(parses):>10.1f} {processor:>15}"
        )


HEADER = f"{'preload':<8} {'run (s)':>8} {'tasks':>6} {'parse p50 (s)':>12} {'parse sum':>10} {'processor (s)':>15}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    from scripts import stop_signals

    stop_signals.install()
    rows = []
    for setting in ("off", "on"):
        with tempfile.TemporaryDirectory(prefix="gpuflow-bench-tasks-") as directory:
            rows.append(measure(setting, Path(directory)))
            print(f"    {rows[-1].line()}", flush=True)
    baseline, preloaded = rows
    print("\n" + HEADER + "\n" + "-" * len(HEADER))
    for row in rows:
        print(row.line())
    parse_ratio = statistics.median(preloaded.task_parses_s) / statistics.median(baseline.task_parses_s)
    print(
        f"\nwith the preload: the run takes {preloaded.run_s / baseline.run_s:.2f}x the baseline's time, "
        f"a task's DAG parse {parse_ratio:.2f}x"
    )
    return 0


def measure(setting: str, state: Path) -> Figures:
    from bench.stack import emulated_stack
    from tests.support.emulated_clouds import FAST_CONF

    print(f"==> GPUFLOW_PRELOAD={setting}: starting Airflow on the emulator", flush=True)
    with emulated_stack(state, {"GPUFLOW_PRELOAD": setting}) as (airflow, _):
        airflow.wait_for_dag(DAG_ID)
        airflow.unpause(DAG_ID)
        started = time.monotonic()
        answer = airflow.trigger(DAG_ID, {**FAST_CONF, "job_name": "bench"})
        answer.raise_for_status()
        run_id = answer.json()["dag_run_id"]
        state_at_end = airflow.follow(DAG_ID, run_id, within_s=1200)
        run_s = time.monotonic() - started
        if state_at_end != "success":
            raise SystemExit(f"the benchmark's run ended {state_at_end}: see {airflow.home}")
        parses = [
            parse
            for ti in airflow.task_instances(DAG_ID, run_id)
            for parse in task_parses(airflow, run_id, ti["task_id"], int(ti.get("try_number") or 1))
        ]
        return Figures(setting, run_s, parses, processor_parse(airflow))


def task_parses(airflow: AirflowStack, run_id: str, task_id: str, try_number: int) -> list[float]:
    """The seconds of each DAG parse in one try's log (a deferred task parses again when it resumes)."""
    starts: list[datetime] = []
    parses: list[float] = []
    for line in airflow.task_log(DAG_ID, run_id, task_id, try_number).splitlines():
        stamp, _, event = line.partition(" ")
        if PARSE_START in event:
            starts.append(datetime.fromisoformat(stamp))
        elif PARSE_END in event and starts:
            parses.append((datetime.fromisoformat(stamp) - starts.pop()).total_seconds())
    return parses


def processor_parse(airflow: AirflowStack) -> float | None:
    """The DAG processor's last reported parse of the pipeline DAG file, in seconds."""
    found = PROCESSOR_ROW.findall(airflow.log_path("dag-processor").read_text(errors="replace"))
    return float(found[-1]) if found else None


if __name__ == "__main__":
    sys.exit(main())
