"""``TrainOperator``: the training pod on the run's GPU pool, through KubernetesPodOperator (deferrable), and the
supervisor that gets capacity again when a spot preemption or a node loss takes the pod away.

Everything that depends on the pool (kubeconfig, node selector, tolerations, accelerator limits) is only
known at run time, so it is filled in just before the provider's own ``execute`` and again when the task
resumes from deferral, possibly on another worker.

A recovery: the lost pool segment goes to the cost ledger, the offer to the failover memory (a capacity signal
for every run); then the run waits, within ``GPUFLOW_REPLACEMENT_WAIT_S``, for the cloud to replace the node
(EKS and GKE do; AKS spot does not), else deletes that pool and requests the next offer of the plan, and restarts
training with the same output URI: the trainer resumes from its last checkpoint. Where it stands is kept in the
state store (``gpuflow.state.training``), so a worker, scheduler or triggerer restart carries it on; the run never
holds two pools longer than the deletion of the lost one takes, and the teardown sweeps whatever it created.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Context
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gpuflow.clouds.access import kube_config, kube_config_file
from gpuflow.core import naming
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import traits
from gpuflow.core.deadline import lost_work_for, next_capacity, overheads_for, progress_from
from gpuflow.core.errors import CloudError
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff
from gpuflow.core.job import DEFAULT_RECOVERIES
from gpuflow.core.progress import TrainingProgress, parse_progress, progress_uri
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
    steps_lost,
    where,
)
from gpuflow.core.settings import replacement_wait_s
from gpuflow.kube.cluster import api_client, node_now, pod_placement, pool_nodes
from gpuflow.kube.training import training_pod
from gpuflow.operators.nodepool import DEFAULT_READY_TIMEOUT_S, create_on_first, no_retry_when_stopped, pool_trigger
from gpuflow.operators.runtime import (
    JOB_NAMESPACE,
    placement_on,
    provisioned_pool,
    provisioner,
    run_of,
    run_output_uri,
)
from gpuflow.provisioning import node_lost
from gpuflow.state.ledger import CostEntry, Ledger
from gpuflow.state.training import TrainingStates
from gpuflow.storage_io import read_text
from gpuflow.triggers import events

# The pool is ready (every node Ready, accelerators advertised) before training starts, so the pod is placed at
# once; a pod still unplaced after this long has lost its node (cordoned for a spot notice), and the recovery
# starts then rather than after a long hang on a paid pool.
SCHEDULE_TIMEOUT_S = 5 * 60
# Pulling a large training image onto a new node takes minutes.
STARTUP_TIMEOUT_S = 20 * 60


class TrainOperator(KubernetesPodOperator):
    """Run the job's training image on the pool ``wait_node_pool`` made ready, recovering from node losses.

    Returns the ``PoolHandoff`` XCom of the pool training finished on (after a recovery, not the first one).

    :param pool_task_id: the task whose XCom describes the ready pool (and fixes the output URI).
    :param plan_task_id: the task whose XCom holds the validated job and the plan's options.
    :param ready_timeout_s: how long a pool requested during a recovery may take to become ready.
    """

    def __init__(
        self,
        *,
        pool_task_id: str = "wait_node_pool",
        plan_task_id: str = "plan",
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "train")
        kwargs.setdefault("namespace", JOB_NAMESPACE)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("schedule_timeout_seconds", SCHEDULE_TIMEOUT_S)
        kwargs.setdefault("startup_timeout_seconds", STARTUP_TIMEOUT_S)
        kwargs.setdefault("on_finish_action", "delete_pod")
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("in_cluster", False)
        super().__init__(**kwargs)
        self.pool_task_id = pool_task_id
        self.plan_task_id = plan_task_id
        self.ready_timeout_s = ready_timeout_s

    def execute(self, context: Context) -> Any:
        state = self._state(context)
        if state.phase is not Phase.TRAINING:  # a new try found a recovery under way: carry it on
            self.log.info("a recovery is under way (%s on %s): waiting for its pool", state.phase, where(state.pool))
            self._wait_for_pool(state)
        return self._start(context, state)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        state = self._state(context)
        pool = PoolHandoff.from_xcom(state.pool)
        self._bind_to_pool(context, pool)
        try:
            super().trigger_reentry(context, event)
        except AirflowException:
            why = self._node_loss(pool, event["namespace"], event["name"])
            if why is None:
                raise
            self._recover(context, state, why)
        return self._finished(context, state)

    def pool_event(self, context: Context, event: dict[str, Any]) -> Any:
        """The pool a recovery waits for is ready (train on it), or failed or never came back (next offer)."""
        events.validate(event)
        state = self._state(context)
        if event["status"] == events.SUCCESS:
            state = state.resumed(datetime.now(UTC), _accelerators(state.pool))
            self._save(context, state)
            self.log.info(recovery_line(state.recoveries[-1], self._max_recoveries(context)))
            return self._start(context, state)
        error = events.error_of(event)
        self.log.warning("node pool %s did not come back: %s", where(state.pool), error)
        lost = PoolHandoff.from_xcom(state.pool)
        step = next_step(
            self._choices(context), lost.choice, cloud_replaces_nodes=False, on_demand_only=state.on_demand_only
        )
        state = state.waiting_on(self._next_offer(context, lost, error, step))
        self._save(context, state)
        return self._wait_for_pool(state)

    # ---- training ----

    def _start(self, context: Context, state: TrainingState) -> Any:
        """Train on the state's pool: a new pod (the lost one was deleted), deferring until it ends; unless the
        trainer's progress file says this run's training already finished (a retry or a rerun after it was done:
        paid work is not thrown away)."""
        self._bind_to_pool(context, PoolHandoff.from_xcom(state.pool))
        self._save(context, state)
        progress = self._progress(context)
        if progress is not None and progress.finished:
            self.log.info(
                "training already finished for this run (%d of %d steps, model published at %s): not run again",
                progress.steps_done,
                progress.total_steps,
                progress.updated_at.isoformat(),
            )
            return self._finished(context, state)
        self.pod, self.pod_request_obj = None, None
        return super().execute(context)

    def _finished(self, context: Context, state: TrainingState) -> dict[str, Any]:
        """The pool training finished on, as this task's XCom (what deploy, teardown and the cost report read)."""
        if state.recoveries:
            self.log.info("training finished on %s after %d recovery(ies)", where(state.pool), len(state.recoveries))
        # Pushed by hand: KPO's do_xcom_push means an XCom sidecar in the pod, which training does not need.
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=state.pool)
        return state.pool

    def _bind_to_pool(self, context: Context, pool: PoolHandoff) -> None:
        job = self._job(context)
        run = run_of(context)
        self.config_file = kube_config_file(pool.cluster)
        output = run_output_uri(context, job, self.pool_task_id)
        env = {"DATASET_URI": job["dataset_uri"]} if job["dataset_uri"] else {}
        self.pod_template_dict = training_pod(
            name=f"{job['job_name']}-train",
            namespace=self.namespace or JOB_NAMESPACE,
            image=job["training_image"],
            placement=placement_on(pool),
            labels=naming.ownership_labels(run.dag_id, run.run_id),
            output_uri=output,
            command=job["training_command"],
            env=env,
        )
        self.image = job["training_image"]
        self.log.info(
            "training %s on %s/%s, writing to %s", job["training_image"], pool.cluster.name, pool.pool.name, output
        )

    def _node_loss(self, pool: PoolHandoff, namespace: str, pod_name: str) -> str | None:
        """Why the pod's end was its node's doing, from what is left of the pod, the node it ran on and the pool's
        nodes; None if it was not."""
        pod = self.pod
        status = pod.status if pod is not None else None
        disruption = (
            next(
                (c.reason or "DisruptionTarget" for c in (status.conditions or []) if c.type == "DisruptionTarget"),
                None,
            )
            if status is not None
            else None
        )
        view = PodView(
            gone=pod is None,
            reason=status.reason if status is not None else None,
            message=status.message if status is not None else None,
            disruption=disruption,
        )
        client = api_client(kube_config(pool.cluster))
        nodes = pool_nodes(client, traits(pool.cluster.cloud).pool_label, pool.pool.name, pool.resource)
        ran_on = None
        if placed := pod_placement(client, namespace, pod_name):
            seen = node_now(client, placed[0], pool.resource)
            ran_on = RanOn(placed[0], placed[1], seen.report, seen.created_at)
        return node_loss(view, nodes, int(pool.choice["nodes"]), ran_on)

    # ---- recovery ----

    def _recover(self, context: Context, state: TrainingState, why: str) -> NoReturn:
        """Close the lost segment, then wait for the same pool's node to come back or move to the next offer (only
        on-demand ones when the deadline cannot absorb another preemption)."""
        now = datetime.now(UTC)
        pool = PoolHandoff.from_xcom(state.pool)
        run = run_of(context)
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
        limit = self._max_recoveries(context)
        progress = self._progress(context)
        recovery = Recovery(
            len(state.recoveries) + 1,
            now.isoformat(),
            where(state.pool),
            why,
            steps_lost=steps_lost(lost_at=now, checkpoint_at=progress.updated_at, step_seconds=progress.step_seconds)
            if progress
            else None,
            step_seconds=progress.step_seconds if progress else None,
        )
        self.log.warning(recovery_line(recovery, limit))
        if recovery.number > limit:
            self._save(context, state.lost(recovery, Phase.TRAINING, state.pool, now))
            raise AirflowFailException(
                f"training lost to a node loss {recovery.number} times (max_recoveries={limit}): {why}. Fix: raise "
                "max_recoveries, or request on-demand capacity (capacity=on-demand) for a run that must not be "
                "interrupted"
            )
        on_demand_only = self._deadline_says_on_demand(context, pool, progress, now)
        error = node_lost(pool.choice, why)
        step = next_step(
            self._choices(context),
            pool.choice,
            cloud_replaces_nodes=traits(pool.cluster.cloud).replaces_lost_nodes,
            on_demand_only=on_demand_only,
        )
        if step.wait_for_replacement:
            provisioner(context).note(pool.choice, error)
            state = state.lost(recovery, Phase.REPLACING, state.pool, now, on_demand_only=on_demand_only)
            self.log.info("waiting up to %.0fs for %s to replace its lost node", replacement_wait_s(), recovery.where)
        else:
            following = self._next_offer(context, pool, error, step)
            state = state.lost(recovery, Phase.PROVISIONING, following, now, on_demand_only=on_demand_only)
        self._save(context, state)
        self._wait_for_pool(state)

    def _next_offer(self, context: Context, lost: PoolHandoff, error: CloudError, step: NextStep) -> dict[str, Any]:
        """Delete the lost pool (remembering why), then request a pool on the first of the step's candidates that
        no run found short since; returns its ``PoolHandoff`` XCom. Never two pools at once: deletion comes first."""
        if step.warning:
            self.log.warning(step.warning)
        p = provisioner(context)
        p.recall()
        with no_retry_when_stopped():
            p.abandon(p.spec_for(lost.choice), lost.choice, error)
            following = create_on_first(p, self._choices(context), step.candidates, lost)
        return following.to_xcom()

    def _progress(self, context: Context) -> TrainingProgress | None:
        """The trainer's progress file in the run's output URI; None when there is none yet or it cannot be read
        (the recovery goes on without it, its figures unknown)."""
        cluster = provisioned_pool(context, self.pool_task_id).cluster
        uri = progress_uri(run_output_uri(context, self._job(context), self.pool_task_id))
        try:
            return parse_progress(read_text(uri, cluster), uri)
        except Exception as exc:  # a store outage or a foreign file must not stop the recovery
            self.log.warning("training progress not read from %s: %s", uri, exc)
            return None

    def _deadline_says_on_demand(
        self, context: Context, pool: PoolHandoff, progress: TrainingProgress | None, now: datetime
    ) -> bool:
        """Whether the run's deadline (``deadline_hours``) leaves no room for another preemption: decided from the
        training's real progress and checkpoint interval (or, without a progress file, as if nothing were done, with
        the plan-time lost work)."""
        request = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).plan["request"]
        hours = request.get("deadline_hours")
        if not hours:
            return False
        done = progress_from(
            progress.steps_done if progress else None,
            progress.total_steps if progress else None,
            progress.step_seconds if progress else None,
            estimated_s=float(request["estimated_hours"]) * 3600,
        )
        started = context["dag_run"].start_date or now
        decision = next_capacity(
            now_s=(now - started).total_seconds(),
            deadline_s=float(hours) * 3600,
            progress=done,
            overheads=overheads_for(
                pool.cluster.cloud,
                lost_work_s=lost_work_for(
                    progress.checkpoint_every if progress else None, progress.step_seconds if progress else None
                ),
            ),
        )
        self.log.info("deadline_hours=%s: %s", hours, decision.reason)
        return decision.capacity is CapacityType.ON_DEMAND

    def _wait_for_pool(self, state: TrainingState) -> NoReturn:
        pool = PoolHandoff.from_xcom(state.pool)
        timeout_s = replacement_wait_s() if state.phase is Phase.REPLACING else self.ready_timeout_s
        self.defer(
            trigger=pool_trigger(self, pool, timeout_s, None),
            method_name="pool_event",
            timeout=timedelta(seconds=timeout_s + 60),
        )

    # ---- state ----

    def _state(self, context: Context) -> TrainingState:
        """The run's training state; on the first start, the pool ``wait_node_pool`` made ready."""
        run = run_of(context)
        found = TrainingStates().load(naming.run_key(run.dag_id, run.run_id))
        if found is not None:
            return found
        first = context["ti"].xcom_pull(task_ids=self.pool_task_id)
        return TrainingState(pool=first, segment_started_at=PoolHandoff.from_xcom(first).requested_at)

    def _save(self, context: Context, state: TrainingState) -> None:
        run = run_of(context)
        TrainingStates().save(naming.run_key(run.dag_id, run.run_id), state, now=datetime.now(UTC))

    def _job(self, context: Context) -> dict[str, Any]:
        return PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).job_fields()

    def _choices(self, context: Context) -> list[dict[str, Any]]:
        return PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).choices

    def _max_recoveries(self, context: Context) -> int:
        return int(self._job(context).get("max_recoveries", DEFAULT_RECOVERIES))


def _accelerators(pool: dict[str, Any]) -> int:
    choice = pool["choice"]
    return int(choice["nodes"]) * int(choice["accelerator_count"])
