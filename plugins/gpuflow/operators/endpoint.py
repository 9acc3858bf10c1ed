"""The vLLM endpoint tasks: deploy it on the run's pool, wait until it serves, smoke-test and benchmark it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseHook, BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.handoffs import DeployedEndpoint, EndpointRef, PlanHandoff, PoolHandoff, cluster_fields
from gpuflow.core.job import serving_options
from gpuflow.core.settings import poll_interval_s
from gpuflow.kube.cluster import api_client, apply
from gpuflow.kube.serving import EndpointSpec, endpoint_manifests
from gpuflow.operators.runtime import JOB_NAMESPACE, placement_on, provisioned_pool, run_of, run_output_uri
from gpuflow.serving.benchmark import BenchmarkConfig, format_report, run_benchmark, write_report
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.smoke import smoke_test
from gpuflow.serving.vllm_args import PORT
from gpuflow.triggers import events
from gpuflow.triggers.endpoint import EndpointTrigger

# Pulling a multi-GB image and loading weights takes minutes on a fresh GPU node.
DEFAULT_SERVE_TIMEOUT_S = 30 * 60


def endpoint_name(job_name: str, run_id_key: str) -> str:
    """``<job>-<run digest>``: one endpoint per run, stable across retries, a valid Service name."""
    return f"{job_name[:30].rstrip('-')}-{run_id_key[:8]}"


class _EndpointTask(BaseOperator):
    """Shared reading of the plan and pool XComs."""

    template_fields = ("plan_task_id", "pool_task_id", "provisioned_task_id")

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        pool_task_id: str = "train",
        provisioned_task_id: str = "wait_node_pool",
        **kwargs: Any,
    ) -> None:
        """``pool_task_id``: the task whose XCom is the pool to serve on (where training finished);
        ``provisioned_task_id``: the task whose pool fixed the run's output URI (the first one)."""
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.pool_task_id = pool_task_id
        self.provisioned_task_id = provisioned_task_id

    def job(self, context: Context) -> dict[str, Any]:
        return PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).job_fields()

    def ready_pool(self, context: Context) -> PoolHandoff:
        return PoolHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.pool_task_id))

    def name(self, context: Context) -> str:
        run = run_of(context)
        return endpoint_name(self.job(context)["job_name"], naming.run_key(run.dag_id, run.run_id))

    def client(self, context: Context) -> OpenAIClient:
        config = kube_config(self.ready_pool(context).cluster)
        return OpenAIClient(service_proxy_endpoint(config, JOB_NAMESPACE, self.name(context), PORT))


class DeployEndpointOperator(_EndpointTask):
    """Apply the vLLM Secret, Deployment and Service for the trained model (create or replace)."""

    ui_color = "#e3f0fb"

    def execute(self, context: Context) -> dict[str, Any]:
        job, pool, run = self.job(context), self.ready_pool(context), run_of(context)
        model = f"{run_output_uri(context, job, self.provisioned_task_id).rstrip('/')}/model"
        spec = EndpointSpec(
            name=self.name(context),
            namespace=JOB_NAMESPACE,
            image=job["serving_image"],
            options=serving_options(job, model, int(pool.choice["accelerator_count"])),
            placement=placement_on(pool),
            labels=naming.ownership_labels(run.dag_id, run.run_id),
            region=pool.cluster.region,
        )
        token = BaseHook.get_connection(job["hf_token_conn_id"]).password if job["hf_token_conn_id"] else None
        applied = apply(api_client(kube_config(pool.cluster)), endpoint_manifests(spec, token))
        self.log.info("applied %s on %s", ", ".join(applied), pool.cluster.name)
        return DeployedEndpoint(spec.name, JOB_NAMESPACE, model, job["served_model_name"]).to_xcom()


class WaitEndpointOperator(_EndpointTask):
    """Wait in the triggerer until the endpoint serves its model through the service proxy."""

    ui_color = "#e3f0fb"

    def __init__(self, *, serve_timeout_s: float = DEFAULT_SERVE_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.serve_timeout_s = serve_timeout_s

    def execute(self, context: Context) -> NoReturn:
        trigger = EndpointTrigger(
            cluster=cluster_fields(self.ready_pool(context).cluster),
            namespace=JOB_NAMESPACE,
            name=self.name(context),
            served_model_name=self.job(context)["served_model_name"],
            port=PORT,
            timeout_s=self.serve_timeout_s,
            poll_interval_s=poll_interval_s(),
        )
        self.defer(
            trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.serve_timeout_s + 60)
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        events.validate(event)
        if event["status"] != events.SUCCESS:
            raise AirflowException(f"endpoint did not become ready: {events.error_of(event)}")
        endpoint = EndpointRef.from_xcom(event["ref"])
        self.log.info("endpoint %s is serving", endpoint.name)
        return endpoint.to_xcom()


class SmokeTestOperator(_EndpointTask):
    """One completion, one chat completion, the model list and vLLM's metrics, each asserted."""

    ui_color = "#e3f0fb"

    def execute(self, context: Context) -> dict[str, object]:
        with self.client(context) as client:
            result = smoke_test(client, self.job(context)["served_model_name"])
        self.log.info("the endpoint answered %r (latencies %s)", result.completion_text, result.latencies_s)
        return result.to_dict()


class BenchmarkOperator(_EndpointTask):
    """Poisson-arrival benchmark (vLLM's definitions); the JSON report and chart go to the run's artifacts."""

    ui_color = "#e3f0fb"

    def execute(self, context: Context) -> dict[str, object] | None:
        job = self.job(context)
        if not job["benchmark_requests"]:
            self.log.info("benchmark_requests=0: no benchmark")
            return None
        config = BenchmarkConfig(
            model=job["served_model_name"],
            num_prompts=job["benchmark_requests"],
            request_rate=job["benchmark_rate"],
            input_len=32,
            output_len=16,
        )
        with self.client(context) as client:
            report = run_benchmark(client, config)
        self.log.info("benchmark:\n%s", format_report(report))
        cluster = provisioned_pool(context, self.provisioned_task_id).cluster  # the one whose bucket holds the run
        out = f"{run_output_uri(context, job, self.provisioned_task_id).rstrip('/')}/benchmark"
        try:
            json_path, png_path = write_report(report, out, cluster)
        except Exception as exc:  # any store failure: the benchmark ran and its figures are not lost
            # The report stays in this task's XCom, and the log says where it could not go: a worker may not reach
            # the bucket (no credentials for it in the cluster's connection, or a store only the cluster's pods reach).
            self.log.warning("benchmark report not written to %s: %s (the XCom holds it)", out, exc)
        else:
            self.log.info("report: %s, chart: %s", json_path, png_path)
        return report.to_dict()
