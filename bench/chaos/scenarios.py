"""The chaos suite's scenarios, each measured as one ``Row``; they run on a started ``AirflowStack`` and emulator.

- ``concurrent``: N runs triggered at once with a GPU limit: pools alive must never exceed it, every run must end
  ``success``.
- ``mark-failed``: a run a person marks failed mid-training must end ``failed``.
- process faults (``FAULTS``): one run, one process killed outright (SIGKILL) when a task reaches a waiting point:
  the task's own process, the triggerer while the task is deferred, or the scheduler, which takes the workers it
  forked with it (a running task then stops heartbeating and Airflow's heartbeat timeout fails it). The run must end
  ``success``.

Every scenario must also leave nothing on the clouds, before and after a janitor sweep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from scripts.airflow_stack import AirflowStack

DAG_ID = "gpu_train_and_serve"
JANITOR = "gpu_janitor"
# A fault must land within this long of the run's start, else the scenario reports it missed.
FAULT_WINDOW_S = 600


@dataclass
class Row:
    scenario: str
    db: str
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
            f"{self.scenario:<31} {self.db:<9} {states:<22} {self.retried:>7} {self.pools_at_most:>10} "
            f"{self.left_before_janitor:>12} {self.left_after_janitor:>11} {self.seconds:>6.0f}  "
            f"{'yes' if self.kept_promise else 'NO'}"
        )


HEADER = (
    f"{'scenario':<31} {'db':<9} {'final states':<22} {'retried':>7} {'pools max':>10} {'left (runs)':>12} "
    f"{'left (jan.)':>11} {'s':>6}  kept"
)


@dataclass(frozen=True)
class Fault:
    """``victim`` (``task`` for the task's own process, else an Airflow component) is killed once ``task_id`` is in
    ``state``."""

    victim: str
    task_id: str
    state: str

    @property
    def name(self) -> str:
        return f"kill {self.victim} @ {self.task_id}"


FAULTS = (
    Fault("task", "create_node_pool", "running"),
    Fault("task", "teardown", "running"),
    Fault("triggerer", "wait_node_pool", "deferred"),
    Fault("triggerer", "train", "deferred"),
    Fault("triggerer", "wait_endpoint", "deferred"),
    Fault("scheduler", "train", "deferred"),
    Fault("scheduler", "benchmark", "running"),  # the heartbeat-timeout path
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

    def __enter__(self) -> PoolSampler:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.join()


def job(name: str, steps: int, benchmark_requests: int = 0) -> dict[str, Any]:
    """A one-L4 on-demand job on GCP with the fake resumable trainer (one step a second, a checkpoint each step)."""
    from tests.support.emulated_clouds import fake_resumable_training

    return {
        "accelerator": "L4",
        "count": 1,
        "capacity": "on-demand",
        "clouds": ["gcp"],
        "job_name": name,
        **fake_resumable_training(steps=steps),
        "served_model_name": "tiny",
        "benchmark_requests": benchmark_requests,
        "benchmark_rate": 5.0,
    }


def concurrent(airflow: AirflowStack, emulator: Any, db: str, runs: int, gpu_limit: int) -> Row:
    print(f"==> [{db}] concurrent: {runs} runs at once, {gpu_limit} GPUs allowed", flush=True)
    started = time.monotonic()
    with PoolSampler(emulator.pools) as sampler:
        run_ids = [trigger(airflow, job(f"chaos{number}", 20)) for number in range(runs)]
        states = {run_id: airflow.follow(DAG_ID, run_id, within_s=3600) for run_id in run_ids}
    row = measured(airflow, emulator, "concurrent", db, states, sampler.most, time.monotonic() - started)
    row.kept_promise = row.kept_promise and set(states.values()) == {"success"} and sampler.most <= gpu_limit
    return row


def mark_failed(airflow: AirflowStack, emulator: Any, db: str) -> Row:
    print(f"==> [{db}] mark-failed: one run marked failed mid-training", flush=True)
    started = time.monotonic()
    with PoolSampler(emulator.pools) as sampler:
        run_id = trigger(airflow, job("stopped", 600))
        wait_for_task(airflow, run_id, "train", "deferred")
        airflow.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
        states = {run_id: airflow.follow(DAG_ID, run_id, within_s=1800)}
    row = measured(airflow, emulator, "mark-failed", db, states, sampler.most, time.monotonic() - started)
    row.kept_promise = row.kept_promise and states[run_id] == "failed"
    return row


def process_fault(airflow: AirflowStack, emulator: Any, db: str, fault: Fault) -> Row:
    """One run; the fault's victim killed once, when the run's task reaches the fault's state."""
    print(f"==> [{db}] {fault.name} ({fault.state})", flush=True)
    started = time.monotonic()
    benchmark = 100 if fault.task_id == "benchmark" else 0  # 20 s of requests: a running task to lose
    with PoolSampler(emulator.pools) as sampler:
        run_id = trigger(airflow, job(f"{fault.victim}-{fault.task_id}".replace("_", "-"), 15, benchmark))
        injected = inject(airflow, run_id, fault)
        states = {run_id: airflow.follow(DAG_ID, run_id, within_s=1800)}
    row = measured(airflow, emulator, fault.name, db, states, sampler.most, time.monotonic() - started)
    if not injected:
        print(f"    {fault.name}: the run passed {fault.task_id} before the fault could land", flush=True)
    row.kept_promise = row.kept_promise and injected and states[run_id] == "success"
    return row


def inject(airflow: AirflowStack, run_id: str, fault: Fault) -> bool:
    """Kill the fault's victim once its task is in the fault's state; False when the run got past it first."""
    if fault.victim == "task":
        process = wait_for_task_process(airflow, run_id, fault.task_id)
        if process is None:
            return False
        process.kill()
        print(f"    killed the task process of {fault.task_id} (pid {process.pid})", flush=True)
    else:
        if wait_for_task(airflow, run_id, fault.task_id, fault.state) is None:
            return False
        airflow.restart(fault.victim)
        print(f"    killed the {fault.victim} and started it again", flush=True)
    return True


def wait_for_task(airflow: AirflowStack, run_id: str, task_id: str, state: str) -> dict[str, Any] | None:
    """The task instance as soon as it is seen in ``state`` (polled every 0.2 s); None if the run ends first."""
    deadline = time.monotonic() + FAULT_WINDOW_S
    while time.monotonic() < deadline:
        ti = _task_instance(airflow, run_id, task_id)
        if ti.get("state") == state:
            return ti
        if _run_state(airflow, run_id) in ("success", "failed"):
            return None
        time.sleep(0.2)
    return None


def wait_for_task_process(airflow: AirflowStack, run_id: str, task_id: str) -> psutil.Process | None:
    """The process of the task's first try as soon as it exists (it runs only while the task is ``running``); None
    if the run ends first.

    Airflow's task runner titles itself ``airflow worker -- <ti id>`` once it starts, so looking for that title every
    50 ms cannot miss a short task (``create_node_pool`` asks for a pool and returns within a second or two), as a
    poll of the task's state through the REST API could on a busy machine.
    """
    title = f"airflow worker -- {_task_instance(airflow, run_id, task_id)['id']}"
    deadline = time.monotonic() + FAULT_WINDOW_S
    next_run_check = time.monotonic()
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            if title in " ".join(process.info["cmdline"] or []):
                return process
        if time.monotonic() >= next_run_check:
            if _run_state(airflow, run_id) in ("success", "failed"):
                return None
            next_run_check = time.monotonic() + 2
        time.sleep(0.05)
    return None


def _task_instance(airflow: AirflowStack, run_id: str, task_id: str) -> dict[str, Any]:
    return next(ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == task_id)


def _run_state(airflow: AirflowStack, run_id: str) -> str:
    return str(airflow.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])


def trigger(airflow: AirflowStack, conf: dict[str, Any]) -> str:
    answer = airflow.trigger(DAG_ID, conf)
    answer.raise_for_status()
    return str(answer.json()["dag_run_id"])


def measured(
    airflow: AirflowStack, emulator: Any, scenario: str, db: str, states: dict[str, str], most: int, seconds: float
) -> Row:
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
    return Row(scenario, db, counts, retried, most, before, after, seconds, kept_promise=before == 0 and after == 0)
