"""The vLLM endpoint tasks: deploy it on the run's pool, wait until it serves, smoke-test and benchmark it.

An endpoint on spot capacity may lose its node while the run is in any of these tasks. Each of them then gets the
run a pool again (``gpuflow.operators.recovering``, as ``train`` does): the wait sees the pool lose a node
(``EndpointTrigger`` watches it), the smoke test's or the benchmark's requests fail and the pool's nodes say why.
The task defers while the same pool's node comes back or the next offer's pool becomes ready, applies the endpoint
again there, defers until it serves, and does its work again (the whole smoke test, the whole benchmark). Where
the recovery stands is in the run's state (the state store), so a new try (a worker or triggerer restart) carries
it on, and what runs after (these tasks, the teardown, the cost report) uses the pool the endpoint ended on.
A failure with healthy nodes is the endpoint's own and fails the task as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, NoReturn

from airflow.sdk import BaseHook, BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.handoffs import DeployedEndpoint, EndpointRef, PlanHandoff, PoolHandoff, cluster_fields
from gpuflow.core.job import serving_options
from gpuflow.core.recovery import RECOVERING, Phase, PodView, where
from gpuflow.core.settings import poll_interval_s
from gpuflow.kube.cluster import api_client, apply
from gpuflow.kube.serving import EndpointSpec, endpoint_manifests
from gpuflow.operators.nodepool import DEFAULT_READY_TIMEOUT_S
from gpuflow.operators.recovering import Recoverer, current_pool, pool_loss, run_state
from gpuflow.operators.runtime import (
    JOB_NAMESPACE,
    endpoint_adapters_uri,
    placement_on,
    provisioned_pool,
    run_of,
    run_output_uri,
)
from gpuflow.serving.benchmark import BenchmarkConfig, format_report, run_benchmark, write_report
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.smoke import SmokeTestFailed, smoke_test
from gpuflow.serving.vllm_args import PORT
from gpuflow.triggers import events
from gpuflow.triggers.endpoint import NODE_LOST, EndpointTrigger

# Pulling a multi-GB image and loading weights takes minutes on a fresh GPU node.
DEFAULT_SERVE_TIMEOUT_S = 30 * 60


def endpoint_name(job: Mapping[str, Any], run_id_key: str) -> str:
    """``<job>-<run digest>``: one endpoint per run, stable across retries, a valid Service name; for a named
    endpoint, ``<endpoint>-<run digest>``: this run's revision of it."""
    prefix = job.get("endpoint_name") or job["job_name"][:30].rstrip("-")
    return f"{prefix}-{run_id_key[:8]}"


class EndpointTask(BaseOperator):
    """Shared reading of the plan and the run's pool, and getting the endpoint to serve again after a node loss.

    A subclass does its work in ``work``; ``served`` is what it does once the endpoint serves again after a recovery
    (by default: the work again).
    """

    template_fields = ("plan_task_id", "pool_task_id", "provisioned_task_id")
    # Whether the task works in an adapter run, which deploys no endpoint of its own (``promote`` loads the adapter).
    for_adapters: ClassVar[bool] = False

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        pool_task_id: str = "train",
        provisioned_task_id: str = "wait_node_pool",
        serve_timeout_s: float = DEFAULT_SERVE_TIMEOUT_S,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        """``pool_task_id``: the task whose XCom is the pool to serve on when no recovery moved the run (where
        training finished); ``provisioned_task_id``: the task whose pool fixed the run's output URI (the first one);
        ``serve_timeout_s``: how long the endpoint may take to serve; ``ready_timeout_s``: how long a pool requested
        by a recovery may take to become ready."""
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.pool_task_id = pool_task_id
        self.provisioned_task_id = provisioned_task_id
        self.serve_timeout_s = serve_timeout_s
        self.ready_timeout_s = ready_timeout_s

    def execute(self, context: Context) -> Any:
        job = self.job(context)
        if job.get("adapter_rank") and not self.for_adapters:
            self.log.info("an adapter run: no endpoint of its own (promote loads it into %s)", job["endpoint_name"])
            return None
        state = run_state(context, self.pool_task_id)
        if state.phase in RECOVERING:  # a new try found a recovery under way: carry it on
            self.log.info("a recovery is under way (%s on %s): waiting for its pool", state.phase, where(state.pool))
            self._wait_for_pool(context)
        if state.resuming:  # the pool came back, but the endpoint was not seen serving on it yet
            self._serve_on(context, PoolHandoff.from_xcom(state.pool))
        return self.work(context)

    def work(self, context: Context) -> Any:
        raise NotImplementedError

    def served(self, context: Context, event: dict[str, Any]) -> Any:
        return self.work(context)

    def job(self, context: Context) -> dict[str, Any]:
        return PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).job_fields()

    def ready_pool(self, context: Context) -> PoolHandoff:
        """The pool the endpoint serves on: where training finished, or where a recovery moved it since."""
        return current_pool(context, self.pool_task_id)

    def name(self, context: Context) -> str:
        run = run_of(context)
        return endpoint_name(self.job(context), naming.run_key(run.dag_id, run.run_id))

    def client(self, context: Context) -> OpenAIClient:
        config = kube_config(self.ready_pool(context).cluster)
        return OpenAIClient(service_proxy_endpoint(config, JOB_NAMESPACE, self.name(context), PORT))

    def spec(self, context: Context, pool: PoolHandoff) -> EndpointSpec:
        """The run's endpoint (or its revision of a named endpoint) serving the trained model on ``pool``."""
        job, run = self.job(context), run_of(context)
        model = f"{run_output_uri(context, job, self.provisioned_task_id).rstrip('/')}/model"
        front = job.get("endpoint_name", "")
        adapters = endpoint_adapters_uri(front, pool.cluster) if front and job.get("enable_lora") else None
        return EndpointSpec(
            name=self.name(context),
            namespace=JOB_NAMESPACE,
            image=job["serving_image"],
            options=serving_options(job, model, int(pool.choice["accelerator_count"])),
            placement=placement_on(pool),
            labels=naming.ownership_labels(run.dag_id, run.run_id),
            region=pool.cluster.region,
            replicas=int(pool.choice["nodes"]),
            front=front,
            adapters_uri=adapters,
        )

    def deploy(self, context: Context, pool: PoolHandoff) -> DeployedEndpoint:
        """Apply the endpoint's Secret, Deployment and Service on ``pool`` (create or replace)."""
        job, spec = self.job(context), self.spec(context, pool)
        token = BaseHook.get_connection(job["hf_token_conn_id"]).password if job["hf_token_conn_id"] else None
        applied = apply(api_client(kube_config(pool.cluster)), endpoint_manifests(spec, token))
        self.log.info(
            "applied %s on %s (node pool %s, %d replica(s): one per node)",
            ", ".join(applied),
            pool.cluster.name,
            pool.pool.name,
            spec.replicas,
        )
        return DeployedEndpoint(spec.name, JOB_NAMESPACE, spec.options.model, job["served_model_name"])

    def wait_until_served(self, context: Context, pool: PoolHandoff) -> NoReturn:
        """Defer until the endpoint serves on ``pool``, watching the pool for a lost node; resumes in
        ``endpoint_event``."""
        trigger = EndpointTrigger(
            cluster=cluster_fields(pool.cluster),
            namespace=JOB_NAMESPACE,
            name=self.name(context),
            served_model_name=self.job(context)["served_model_name"],
            port=PORT,
            timeout_s=self.serve_timeout_s,
            poll_interval_s=poll_interval_s(),
            pool=pool.pool.name,
            resource=pool.resource,
            nodes=int(pool.choice["nodes"]),
        )
        self.defer(trigger=trigger, method_name="endpoint_event", timeout=timedelta(seconds=self.serve_timeout_s + 60))

    def endpoint_event(self, context: Context, event: dict[str, Any]) -> Any:
        """The endpoint serves (again: the recovery is over, and the task's work is done again), or it did not (a
        lost node is recovered from; anything else fails the task)."""
        events.validate(event)
        if event["status"] != events.SUCCESS:
            error = events.error_of(event)
            self.recover_if_node_lost(context, error.message if error.code == NODE_LOST else None)
            raise AirflowException(f"endpoint did not become ready: {error}")
        state = run_state(context, self.pool_task_id)
        if state.resuming:
            Recoverer(self, context, self.plan_task_id).resumed(state, Phase.SERVING)
        return self.served(context, event)

    def pool_event(self, context: Context, event: dict[str, Any]) -> NoReturn:
        """The pool a recovery waits for is ready (serve on it), or failed or never came back (the next offer)."""
        recoverer = Recoverer(self, context, self.plan_task_id)
        state = recoverer.pool_event(run_state(context, self.pool_task_id), event, Phase.SERVING)
        if state.phase in RECOVERING:
            self._wait_for_pool(context)
        self._serve_on(context, PoolHandoff.from_xcom(state.pool))

    def recover_if_node_lost(self, context: Context, why: str | None = None) -> None:
        """When the run's pool lost a node (``why``, or what its nodes say now), start a recovery and defer; returns
        only when the nodes are not to blame (the caller fails as it would have)."""
        state = run_state(context, self.pool_task_id)
        why = why or pool_loss(PoolHandoff.from_xcom(state.pool), PodView(gone=True))
        if why is None:
            return
        Recoverer(self, context, self.plan_task_id).lose(state, why, during=Phase.SERVING)
        self._wait_for_pool(context)

    def _serve_on(self, context: Context, pool: PoolHandoff) -> NoReturn:
        self.deploy(context, pool)
        self.wait_until_served(context, pool)

    def _wait_for_pool(self, context: Context) -> NoReturn:
        Recoverer(self, context, self.plan_task_id).wait_for_pool(
            run_state(context, self.pool_task_id), method_name="pool_event", ready_timeout_s=self.ready_timeout_s
        )


class DeployEndpointOperator(EndpointTask):
    """Apply the vLLM Secret, Deployment and Service for the trained model (create or replace)."""

    ui_color = "#e3f0fb"

    def work(self, context: Context) -> dict[str, Any]:
        return self.deploy(context, self.ready_pool(context)).to_xcom()


class WaitEndpointOperator(EndpointTask):
    """Wait in the triggerer until the endpoint serves its model through the service proxy."""

    ui_color = "#e3f0fb"

    def work(self, context: Context) -> NoReturn:
        self.wait_until_served(context, self.ready_pool(context))

    def served(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        endpoint = EndpointRef.from_xcom(event["ref"])
        self.log.info("endpoint %s is serving", endpoint.name)
        return endpoint.to_xcom()


class SmokeTestOperator(EndpointTask):
    """One completion, one chat completion, the model list and vLLM's metrics, each asserted."""

    ui_color = "#e3f0fb"

    def work(self, context: Context) -> dict[str, object]:
        try:
            with self.client(context) as client:
                result = smoke_test(client, self.job(context)["served_model_name"])
        except SmokeTestFailed as exc:
            self.log.warning("%s: is the endpoint's node still there?", exc)
            self.recover_if_node_lost(context)
            raise
        self.log.info("the endpoint answered %r (latencies %s)", result.completion_text, result.latencies_s)
        return result.to_dict()


class BenchmarkOperator(EndpointTask):
    """Poisson-arrival benchmark (vLLM's definitions); the JSON report and chart go to the run's artifacts.

    A benchmark whose requests failed because the pool lost a node is run again, whole, once the endpoint serves
    again: its figures would otherwise measure the outage, not the endpoint."""

    ui_color = "#e3f0fb"

    def work(self, context: Context) -> dict[str, object] | None:
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
        if report.failed:
            self.log.warning(
                "%d of %d requests failed: is the endpoint's node still there?", report.failed, config.num_prompts
            )
            self.recover_if_node_lost(context)
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
