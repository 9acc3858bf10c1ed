"""Getting a run's capacity back when its pool loses a node, for every task that works on the pool: ``train``
(``gpuflow.operators.train``) and the endpoint's tasks (``gpuflow.operators.endpoint``).

A recovery: the lost pool segment goes to the cost ledger, the offer to the failover memory (a capacity signal for
every run); then the run waits, within ``GPUFLOW_REPLACEMENT_WAIT_S``, for the cloud to replace the node (EKS and
GKE do; AKS spot does not), else deletes that pool and requests the next offer of the plan. The task defers while
the pool comes back (``NodePoolTrigger``) and then resumes its own work on it.

One state per run (``TrainingState`` in the state store, ``gpuflow.state.training``), whichever task found the
loss: a worker, scheduler or triggerer restart carries it on, and what runs after (the endpoint's tasks, the
teardown, the cost report) reads from it the pool the run ends on. ``max_recoveries`` counts every recovery of the
run, training's and the endpoint's together: each one pays for a new pool and its wait, whatever it interrupted.
The run never holds two pools longer than the deletion of the lost one takes: deletion comes first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.clouds import traits
from gpuflow.core.errors import CloudError
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff
from gpuflow.core.job import DEFAULT_RECOVERIES
from gpuflow.core.recovery import (
    NextStep,
    Phase,
    PodView,
    RanOn,
    Recovery,
    TrainingState,
    next_step,
    node_loss,
    recovery_line,
    where,
)
from gpuflow.core.settings import replacement_wait_s
from gpuflow.kube.cluster import api_client, node_now, pod_placement, pool_nodes
from gpuflow.operators.nodepool import create_on_first, no_retry_when_stopped, pool_trigger
from gpuflow.operators.runtime import provisioner, run_of
from gpuflow.provisioning import node_lost
from gpuflow.state.ledger import CostEntry, Ledger
from gpuflow.state.training import TrainingStates
from gpuflow.triggers import events


def run_state(context: Context, first_pool_task_id: str) -> TrainingState:
    """The run's recovery state; before anyone saved one, the pool ``first_pool_task_id``'s XCom describes, paid
    for since it was first requested."""
    run = run_of(context)
    found = TrainingStates().load(naming.run_key(run.dag_id, run.run_id))
    if found is not None:
        return found
    first = context["ti"].xcom_pull(task_ids=first_pool_task_id)
    return TrainingState(pool=first, segment_started_at=PoolHandoff.from_xcom(first).requested_at)


def current_pool(context: Context, first_pool_task_id: str) -> PoolHandoff:
    """The pool the run works on now (after any recovery), else ``first_pool_task_id``'s."""
    return PoolHandoff.from_xcom(run_state(context, first_pool_task_id).pool)


def pod_view(pod: Any | None) -> PodView:
    """What is left to see of a pod (a ``V1Pod`` read after it ended; None: deleted, as an eviction does), as
    ``core.recovery.node_loss`` reads it."""
    status = pod.status if pod is not None else None
    if status is None:
        return PodView(gone=pod is None)
    disruption = next(
        (c.reason or "DisruptionTarget" for c in (status.conditions or []) if c.type == "DisruptionTarget"), None
    )
    return PodView(gone=False, reason=status.reason, message=status.message, disruption=disruption)


def pool_loss(pool: PoolHandoff, pod: PodView, placed: tuple[str, str] | None = None) -> str | None:
    """Why work on ``pool`` stopped because of its nodes (``core.recovery.node_loss``), from the pool's nodes now and,
    for a pod (``placed``: its namespace and name), the node it ran on; None when the nodes are not to blame."""
    client = api_client(kube_config(pool.cluster))
    nodes = pool_nodes(client, traits(pool.cluster.cloud).pool_label, pool.pool.name, pool.resource)
    ran_on = None
    if placed is not None and (placement := pod_placement(client, *placed)):
        seen = node_now(client, placement[0], pool.resource)
        ran_on = RanOn(placement[0], placement[1], seen.report, seen.created_at)
    return node_loss(pod, nodes, int(pool.choice["nodes"]), ran_on)


class Recoverer:
    """The steps of a recovery, for one try of a task (``operator``) working on the run's pool."""

    def __init__(self, operator: BaseOperator, context: Context, plan_task_id: str) -> None:
        self.operator, self.context = operator, context
        self.plan = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=plan_task_id))

    @property
    def limit(self) -> int:
        return int(self.plan.job_fields().get("max_recoveries", DEFAULT_RECOVERIES))

    def save(self, state: TrainingState) -> None:
        run = run_of(self.context)
        TrainingStates().save(naming.run_key(run.dag_id, run.run_id), state, now=datetime.now(UTC))

    def lose(
        self,
        state: TrainingState,
        why: str,
        *,
        during: Phase,
        steps_lost: int | None = None,
        step_seconds: float | None = None,
        on_demand_only: bool = False,
    ) -> TrainingState:
        """Close the lost segment, log the recovery, and start getting capacity back: the same pool's node (the
        cloud replaces it) or the next offer (only on-demand ones when ``on_demand_only``). Returns the saved state
        to wait on; fails the task for good when the run is out of recoveries."""
        now = datetime.now(UTC)
        pool = PoolHandoff.from_xcom(state.pool)
        run = run_of(self.context)
        Ledger().record(
            CostEntry.for_pool(
                dag_id=run.dag_id,
                run_id=run.run_id,
                choice=pool.choice,
                held_from=datetime.fromisoformat(state.segment_started_at),
                held_until=now,
                estimated_usd=0.0,  # the plan's estimate is the run's, on its last segment
                ended_by=f"preempted: {why}"[:500],
                pool=pool.pool,
            )
        )
        number = len(state.recoveries) + 1
        recovery = Recovery(number, now.isoformat(), where(state.pool), why, steps_lost, step_seconds, during=during)
        self.operator.log.warning(recovery_line(recovery, self.limit))
        if number > self.limit:
            self.save(state.lost(recovery, during, state.pool, now))
            raise AirflowFailException(
                f"{during} lost to a node loss; the run has recovered {number - 1} time(s) already "
                f"(max_recoveries={self.limit}): {why}. Fix: raise max_recoveries, or request on-demand capacity "
                "(capacity=on-demand) for a run that must not be interrupted"
            )
        error = node_lost(pool.choice, why)
        step = next_step(
            self.plan.choices,
            pool.choice,
            cloud_replaces_nodes=traits(pool.cluster.cloud).replaces_lost_nodes,
            on_demand_only=on_demand_only,
        )
        if step.wait_for_replacement:
            provisioner(self.context).note(pool.choice, error)
            state = state.lost(recovery, Phase.REPLACING, state.pool, now, on_demand_only=on_demand_only)
            self.operator.log.info(
                "waiting up to %.0fs for %s to replace its lost node", replacement_wait_s(), recovery.where
            )
        else:
            following = self._next_offer(pool, error, step)
            state = state.lost(recovery, Phase.PROVISIONING, following, now, on_demand_only=on_demand_only)
        self.save(state)
        return state

    def pool_event(self, state: TrainingState, event: dict[str, Any], phase: Phase) -> TrainingState:
        """The pool a recovery waits for is ready (back to ``phase`` on it), or failed or never came back (the next
        offer is requested); returns the saved state."""
        events.validate(event)
        if event["status"] == events.SUCCESS:
            state = state.back_on_pool(phase)
        else:
            error = events.error_of(event)
            self.operator.log.warning("node pool %s did not come back: %s", where(state.pool), error)
            lost = PoolHandoff.from_xcom(state.pool)
            step = next_step(
                self.plan.choices, lost.choice, cloud_replaces_nodes=False, on_demand_only=state.on_demand_only
            )
            state = state.waiting_on(self._next_offer(lost, error, step))
        self.save(state)
        return state

    def resumed(self, state: TrainingState, phase: Phase) -> TrainingState:
        """The work runs again on the state's pool (``phase``): the last recovery gets its figures and its line."""
        choice = state.pool["choice"]
        state = state.resumed(datetime.now(UTC), int(choice["nodes"]) * int(choice["accelerator_count"]), phase)
        self.save(state)
        self.operator.log.info(recovery_line(state.recoveries[-1], self.limit))
        return state

    def wait_for_pool(self, state: TrainingState, *, method_name: str, ready_timeout_s: float) -> NoReturn:
        """Defer until the state's pool is ready: within the replacement bound for the same pool, the ready
        timeout for a new one."""
        pool = PoolHandoff.from_xcom(state.pool)
        timeout_s = replacement_wait_s() if state.phase is Phase.REPLACING else ready_timeout_s
        self.operator.defer(
            trigger=pool_trigger(self.operator, pool, timeout_s, None),
            method_name=method_name,
            timeout=timedelta(seconds=timeout_s + 60),
        )

    def _next_offer(self, lost: PoolHandoff, error: CloudError, step: NextStep) -> dict[str, Any]:
        """Delete the lost pool (remembering why), then request a pool on the first of the step's candidates that
        no run found short since; returns its ``PoolHandoff`` XCom. Never two pools at once: deletion comes first."""
        if step.warning:
            self.operator.log.warning(step.warning)
        p = provisioner(self.context)
        p.recall()
        with no_retry_when_stopped():
            p.abandon(p.spec_for(lost.choice), lost.choice, error)
            following = create_on_first(p, self.plan.choices, step.candidates, lost)
        return following.to_xcom()
