"""The train-and-serve chain, built once and used by every pipeline DAG (manual and scheduled).

plan -> admit (the run's GPU lease, ``gpuflow.core.admission``) -> create_node_pool (setup) -> wait_node_pool
-> train -> deploy_endpoint -> wait_endpoint -> smoke_test -> benchmark -> promote (onto a named endpoint; nothing
without one) -> teardown (teardown of create_node_pool; runs whatever happened) -> cost_report

The tasks from create_node_pool through benchmark hold GPUs, so they run in the Airflow pool ``gpu``
(``include/config/pools.json``: its slots are worker slots for GPU tasks; deferred tasks count). How many GPUs are
provisioned at once is capped by ``admit``'s leases (``GPUFLOW_GPU_LIMITS``), which are held until the pools are
gone. The teardown, the cost report and the watcher stay out of the pool: cleanup must never wait for a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseOperator, WeightRule

from gpuflow.operators.admission import AdmitOperator
from gpuflow.operators.cost import CostReportOperator
from gpuflow.operators.endpoint import (
    DEFAULT_SERVE_TIMEOUT_S,
    BenchmarkOperator,
    DeployEndpointOperator,
    SmokeTestOperator,
    WaitEndpointOperator,
)
from gpuflow.operators.named_endpoint import PromoteOperator
from gpuflow.operators.nodepool import DEFAULT_READY_TIMEOUT_S, CreateNodePoolOperator, WaitNodePoolOperator
from gpuflow.operators.plan import PlanOperator
from gpuflow.operators.teardown import TeardownOperator
from gpuflow.operators.train import TrainOperator
from gpuflow.operators.watcher import RunWatcher

GPU_POOL = "gpu"
# For the tasks in ``GPU_POOL``: each run holds at most one slot at a time, and releases it between two of its
# tasks. Ranking a task by its upstream count lets a run already holding a node pool take the slot back before
# a newer run's create_node_pool takes it (the default ranks the other way round, by downstream count).
GPU_SLOT: dict[str, Any] = {"pool": GPU_POOL, "weight_rule": WeightRule.UPSTREAM}
# For the tasks that only wait, deferred: Airflow 3.3 can fail a deferred task as it resumes (docs/operations.md,
# "A deferred task failed as it resumed"), and on a loaded scheduler twice in a row. A new try of a wait only waits
# again, so more tries cost nothing; the DAG's default (one retry) stays for the tasks that pay for work.
WAIT_RETRIES: dict[str, Any] = {"retries": 3}


@dataclass(frozen=True)
class Timing:
    """How long each wait may take; how often it polls is ``GPUFLOW_POLL_INTERVAL_S``, read at run time."""

    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    serve_timeout_s: float = DEFAULT_SERVE_TIMEOUT_S


@dataclass(frozen=True)
class Pipeline:
    plan: BaseOperator
    admit: BaseOperator
    create_node_pool: BaseOperator
    wait_node_pool: BaseOperator
    train: BaseOperator
    deploy_endpoint: BaseOperator
    wait_endpoint: BaseOperator
    smoke_test: BaseOperator
    benchmark: BaseOperator
    promote: BaseOperator
    teardown: BaseOperator
    cost_report: BaseOperator


def train_and_serve(timing: Timing | None = None) -> Pipeline:
    """Add the pipeline's tasks to the DAG being defined and wire them; returns them for extension."""
    timing = timing or Timing()
    plan = PlanOperator(task_id="plan", for_provisioning=True)
    # Outside the gpu pool: a run waiting for its GPU lease holds no slot (gpuflow.core.admission).
    admit = AdmitOperator(task_id="admit", **WAIT_RETRIES)
    create = CreateNodePoolOperator(task_id="create_node_pool", **GPU_SLOT)
    wait = WaitNodePoolOperator(
        task_id="wait_node_pool", ready_timeout_s=timing.ready_timeout_s, **GPU_SLOT, **WAIT_RETRIES
    )
    train = TrainOperator(task_id="train", **GPU_SLOT)
    deploy = DeployEndpointOperator(task_id="deploy_endpoint", **GPU_SLOT)
    wait_endpoint = WaitEndpointOperator(
        task_id="wait_endpoint", serve_timeout_s=timing.serve_timeout_s, **GPU_SLOT, **WAIT_RETRIES
    )
    smoke = SmokeTestOperator(task_id="smoke_test", **GPU_SLOT)
    benchmark = BenchmarkOperator(task_id="benchmark", **GPU_SLOT)
    promote = PromoteOperator(task_id="promote", **GPU_SLOT)
    teardown = TeardownOperator(task_id="teardown")
    cost_report = CostReportOperator(task_id="cost_report")
    plan >> admit >> create >> wait >> train >> deploy >> wait_endpoint >> smoke >> benchmark >> promote >> teardown
    teardown >> cost_report
    teardown.as_teardown(setups=create, on_failure_fail_dagrun=True)
    # Also a teardown: it runs whenever a pool was requested, and (unlike an ALL_DONE task) its success
    # does not mark a failed run successful.
    cost_report.as_teardown(setups=create)
    # The verdict: a teardown without setups, so a person's "mark failed" does not skip it (see RunWatcher). The
    # setup is left out: Airflow requires a setup's direct downstreams to wait for its success.
    watcher = RunWatcher(task_id="watcher")
    [plan, admit, wait, train, deploy, wait_endpoint, smoke, benchmark, promote] >> watcher
    watcher.as_teardown(on_failure_fail_dagrun=True)
    return Pipeline(
        plan=plan,
        admit=admit,
        create_node_pool=create,
        wait_node_pool=wait,
        train=train,
        deploy_endpoint=deploy,
        wait_endpoint=wait_endpoint,
        smoke_test=smoke,
        benchmark=benchmark,
        promote=promote,
        teardown=teardown,
        cost_report=cost_report,
    )
