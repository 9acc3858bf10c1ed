"""``TrainOperator``: the training pod on the run's GPU pool, through KubernetesPodOperator (deferrable).

Everything that depends on the pool (kubeconfig, node selector, tolerations, accelerator limits) is only
known at run time, so it is filled in just before the provider's own ``execute`` and again when the task
resumes from deferral, possibly on another worker.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Context

from gpuflow.clouds.access import kube_config_file
from gpuflow.core import naming
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff
from gpuflow.kube.training import training_pod
from gpuflow.operators.runtime import JOB_NAMESPACE, output_uri, placement_on, run_of

# A GPU node may have to be created and join the cluster before the pod can be scheduled.
SCHEDULE_TIMEOUT_S = 20 * 60


class TrainOperator(KubernetesPodOperator):
    """Run the job's training image on the pool ``wait_node_pool`` made ready.

    :param pool_task_id: the task whose XCom describes the ready pool.
    :param plan_task_id: the task whose XCom holds the validated job.
    """

    def __init__(self, *, pool_task_id: str = "wait_node_pool", plan_task_id: str = "plan", **kwargs: Any) -> None:
        kwargs.setdefault("name", "train")
        kwargs.setdefault("namespace", JOB_NAMESPACE)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("schedule_timeout_seconds", SCHEDULE_TIMEOUT_S)
        kwargs.setdefault("startup_timeout_seconds", SCHEDULE_TIMEOUT_S)
        kwargs.setdefault("on_finish_action", "delete_pod")
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("in_cluster", False)
        super().__init__(**kwargs)
        self.pool_task_id = pool_task_id
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> Any:
        self._bind_to_pool(context)
        return super().execute(context)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        self._bind_to_pool(context)
        return super().trigger_reentry(context, event)

    def _bind_to_pool(self, context: Context) -> None:
        ti = context["ti"]
        pool = PoolHandoff.from_xcom(ti.xcom_pull(task_ids=self.pool_task_id))
        job = PlanHandoff.from_xcom(ti.xcom_pull(task_ids=self.plan_task_id)).job_fields()
        run = run_of(context)
        self.config_file = kube_config_file(pool.cluster)
        output = output_uri(job, run, pool.cluster)
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
            "training %s on %s/%s, writing to %s",
            job["training_image"],
            pool.cluster.name,
            pool.pool.name,
            output,
        )
