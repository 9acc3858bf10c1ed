"""``TrainOperator``: the training pod on the run's GPU pool, through KubernetesPodOperator (deferrable), and the
supervisor that gets capacity again when a spot preemption or a node loss takes the pod away. A pool of several
nodes trains as one Indexed Job instead (``training_job``: why not the provider's KubernetesJobOperator is said
there), sharing the pod's fields, the finished-training check, the run state and the recovery from a lost node (a new
Job on the pool got back); a rank that fails on healthy nodes fails the task.

Everything that depends on the pool (kubeconfig, node selector, tolerations, accelerator limits) is only
known at run time, so it is filled in just before the provider's own ``execute`` and again when the task
resumes from deferral, possibly on another worker.

A recovery (``gpuflow.operators.recovering``, shared with the endpoint's tasks) gets the run a pool again, the
same one or the next offer, and training restarts there with the same output URI: the trainer resumes from its
last checkpoint. What is training's own: telling a node loss from the pod's failure by what is left of the pod, the
steps the loss threw away (from the trainer's progress file), and the deadline's say on spot or on-demand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Context
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.access import kube_config, kube_config_file
from gpuflow.core import naming
from gpuflow.core.catalog import CapacityType
from gpuflow.core.deadline import lost_work_for, next_capacity, overheads_for, progress_from
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff, cluster_fields
from gpuflow.core.job import training_env
from gpuflow.core.progress import TrainingProgress, parse_progress, progress_uri
from gpuflow.core.recovery import RECOVERING, Phase, TrainingState, steps_lost, where
from gpuflow.core.settings import poll_interval_s
from gpuflow.kube.cluster import api_client
from gpuflow.kube.multinode import rendezvous_service
from gpuflow.kube.multinode import training_job as training_job_manifest
from gpuflow.kube.training import one_node_training_pod
from gpuflow.operators import training_job
from gpuflow.operators.nodepool import DEFAULT_READY_TIMEOUT_S
from gpuflow.operators.recovering import Recoverer, pod_view, pool_loss, run_state
from gpuflow.operators.runtime import JOB_NAMESPACE, placement_on, provisioned_pool, run_of, run_output_uri
from gpuflow.storage_io import read_text
from gpuflow.triggers.training_job import TrainingJobTrigger

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
        if state.phase in RECOVERING:  # a new try found a recovery under way: carry it on
            self.log.info("a recovery is under way (%s on %s): waiting for its pool", state.phase, where(state.pool))
            self._wait_for_pool(context, state)
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
        recoverer = Recoverer(self, context, self.plan_task_id)
        state = recoverer.pool_event(self._state(context), event, Phase.TRAINING)
        if state.phase in RECOVERING:
            return self._wait_for_pool(context, state)
        return self._start(context, recoverer.resumed(state, Phase.TRAINING))

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
        if _nodes(state) > 1:
            self._start_job(context, state)
        self.pod, self.pod_request_obj = None, None
        return super().execute(context)

    def _start_job(self, context: Context, state: TrainingState) -> NoReturn:
        """Train on every node of the pool as one Indexed Job (``training_job``), deferring until it ends."""
        pool = PoolHandoff.from_xcom(state.pool)
        job, service = self._job_manifests(context, pool)
        name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
        training_job.start(api_client(kube_config(pool.cluster)), job, service, self.log.info)
        self.log.info("training on %d nodes as Job %s", _nodes(state), name)
        self.defer(
            trigger=TrainingJobTrigger(cluster_fields(pool.cluster), namespace, name, poll_interval_s()),
            method_name="job_event",
        )

    def job_event(self, context: Context, event: dict[str, Any]) -> Any:
        """The training Job ended: every rank's log into the task's, the Job and its Service removed; then, if a
        node of the pool was lost (a spot preemption), the recovery a one-pod training gets, after which a new Job
        resumes from the last checkpoint; else the task fails with the Job's reason unless it completed."""
        state = self._state(context)
        pool = PoolHandoff.from_xcom(state.pool)
        namespace, name = event["namespace"], event["name"]
        lost = None if event.get("status") == "success" else training_job.node_loss(pool, namespace, name)
        failure = training_job.finish(api_client(kube_config(pool.cluster)), namespace, name, event, self.log.info)
        if failure is not None and lost is not None:
            self.log.warning("training Job %s failed: %s", name, failure)
            self._recover(context, state, lost)
        if failure is not None:
            raise AirflowException(f"training Job {name} failed: {failure}")
        return self._finished(context, state)

    def _finished(self, context: Context, state: TrainingState) -> dict[str, Any]:
        """The pool training finished on, as this task's XCom (what deploy, teardown and the cost report read)."""
        if state.recoveries:
            self.log.info("training finished on %s after %d recovery(ies)", where(state.pool), len(state.recoveries))
        # Pushed by hand: KPO's do_xcom_push means an XCom sidecar in the pod, which training does not need.
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=state.pool)
        return state.pool

    def _bind_to_pool(self, context: Context, pool: PoolHandoff) -> None:
        self.config_file = kube_config_file(pool.cluster)
        fields = self._manifest_fields(context, pool)
        self.pod_template_dict = one_node_training_pod(**fields)
        self.image = fields["image"]
        self.log.info(
            "training %s on %s/%s, writing to %s", self.image, pool.cluster.name, pool.pool.name, fields["output_uri"]
        )

    def _job_manifests(self, context: Context, pool: PoolHandoff) -> tuple[dict[str, Any], dict[str, Any]]:
        """The Indexed Job training on every node of the pool, and the headless Service its ranks meet through."""
        fields = self._manifest_fields(context, pool)
        job = training_job_manifest(**fields, nodes=int(pool.choice["nodes"]))
        service = rendezvous_service(name=fields["name"], namespace=fields["namespace"], labels=fields["labels"])
        return job, service

    def _manifest_fields(self, context: Context, pool: PoolHandoff) -> dict[str, Any]:
        """What the training pod and the training Job share: image, command, output, labels, placement."""
        handoff = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        job, base = handoff.job_fields(), handoff.adapter_base
        run = run_of(context)
        return {
            "name": f"{job['job_name']}-train",
            "namespace": self.namespace or JOB_NAMESPACE,
            "image": job["training_image"],
            "placement": placement_on(pool),
            "labels": naming.ownership_labels(run.dag_id, run.run_id),
            "output_uri": run_output_uri(context, job, self.pool_task_id),
            "command": job["training_command"],
            "env": training_env(job, base["model_uri"] if base else None),
        }

    def _node_loss(self, pool: PoolHandoff, namespace: str, pod_name: str) -> str | None:
        """Why the pod's end was its node's doing, from what is left of the pod, the node it ran on and the pool's
        nodes (``recovering.pool_loss``); None if it was not."""
        return pool_loss(pool, pod_view(self.pod), (namespace, pod_name))

    # ---- recovery ----

    def _recover(self, context: Context, state: TrainingState, why: str) -> NoReturn:
        """Get capacity back (``recovering.Recoverer.lose``) with training's figures: the steps lost since the last
        checkpoint, and only on-demand offers when the deadline cannot absorb another preemption."""
        now = datetime.now(UTC)
        progress = self._progress(context)
        state = Recoverer(self, context, self.plan_task_id).lose(
            state,
            why,
            during=Phase.TRAINING,
            steps_lost=steps_lost(lost_at=now, checkpoint_at=progress.updated_at, step_seconds=progress.step_seconds)
            if progress
            else None,
            step_seconds=progress.step_seconds if progress else None,
            on_demand_only=self._deadline_says_on_demand(context, PoolHandoff.from_xcom(state.pool), progress, now),
        )
        self._wait_for_pool(context, state)

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

    def _wait_for_pool(self, context: Context, state: TrainingState) -> NoReturn:
        Recoverer(self, context, self.plan_task_id).wait_for_pool(
            state, method_name="pool_event", ready_timeout_s=self.ready_timeout_s
        )

    # ---- state ----

    def _state(self, context: Context) -> TrainingState:
        """The run's recovery state; on the first start, the pool ``wait_node_pool`` made ready."""
        return run_state(context, self.pool_task_id)

    def _save(self, context: Context, state: TrainingState) -> None:
        Recoverer(self, context, self.plan_task_id).save(state)

    def _job(self, context: Context) -> dict[str, Any]:
        return PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).job_fields()


def _nodes(state: TrainingState) -> int:
    return int(PoolHandoff.from_xcom(state.pool).choice["nodes"])
