"""``promote`` for an adapter run: load the run's LoRA adapter into the named endpoint's live pods, no restart.

The run trained a LoRA adapter on the live revision's model (the plan's ``adapter_base``) and deployed nothing of its
own. Here the adapter is published to the endpoint's adapters folder under a name of this run
(``JOB-RUNKEY8``, so a half-copied version is never read as a whole one), which each pod's sidecar mirrors into
``/models/adapters``; then every pod of the live revision is told, through its own proxy (the Service would pick one),
to load it as the job's name with vLLM's ``load_inplace``: clients asking for that name get the new adapter from then
on, with no new pod and no new pool. A load waits while the sidecar has not copied it yet. Each pod answers one
completion with the adapter; the pods must be the same ones, with no restart, afterwards. With ``swap_load`` a steady
load on the base model runs through the front Service meanwhile.

Why not the gate: the gate compares two models serving the same name; an adapter's name is new or replaces an
adapter, and the base model's traffic, which the load measures, is what a load must not disturb. A failed load leaves
the pod serving what it served (vLLM loads an adapter whole or not at all); with several replicas, pods loaded before
a failure serve the new adapter (the task fails, naming them).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.handoffs import PlanHandoff
from gpuflow.kube.cluster import api_client, serving_pods
from gpuflow.kube.serving import ADAPTERS_DIR
from gpuflow.named_endpoints import live_endpoint
from gpuflow.operators.endpoint import EndpointTask
from gpuflow.operators.runtime import JOB_NAMESPACE, provisioned_pool, run_of, run_output_uri
from gpuflow.serving.client import OpenAIClient, pod_proxy_endpoint, service_proxy_endpoint
from gpuflow.serving.load import MeasuredAct
from gpuflow.serving.vllm_args import PORT
from gpuflow.storage_io import copy_folder

# How long a pod's sidecar may take to mirror a published adapter (it copies every ``adapter_sync_period_s``).
SYNC_TIMEOUT_S = 300
WARM_UP_ANSWERS = 10  # answers of the base model through the front before the first load: the "before" latency
PROMPT = "Hello"


def promote_adapter(task: EndpointTask, context: Context, job: dict[str, Any], front: str) -> dict[str, Any]:
    """Publish the run's adapter and load it into every pod of ``front``'s live revision; the XCom says where,
    how long it took, what each pod answered, and the steady load's figures."""
    base = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=task.plan_task_id)).adapter_base
    if base is None:
        raise AirflowFailException(f"the plan holds no adapter_base for adapter_rank={job['adapter_rank']}: plan again")
    pool = task.ready_pool(context)
    live = live_endpoint(front, pool.cluster, JOB_NAMESPACE)
    if live is None or live.revision != base["revision"]:
        now = live.revision if live else "no revision: the endpoint is gone"
        raise AirflowFailException(
            f"endpoint {front} no longer serves revision {base['revision']}, whose model the adapter was trained on "
            f"(it serves {now}); run again to train an adapter on the live model"
        )
    run = run_of(context)
    version = f"{job['job_name']}-{naming.run_key(run.dag_id, run.run_id)[:8]}"
    source = f"{run_output_uri(context, job, task.provisioned_task_id).rstrip('/')}/adapter"
    target = f"{base['adapters_uri'].rstrip('/')}/{version}"
    copied = copy_folder(source, target, provisioned_pool(context, task.provisioned_task_id).cluster)
    task.log.info("adapter published: %s -> %s (%s)", source, target, ", ".join(copied))

    config = kube_config(live.cluster)
    kube = api_client(config)
    selector = f"{naming.REVISION_LABEL}={live.revision}"
    before = serving_pods(kube, JOB_NAMESPACE, selector)
    name, path = job["job_name"], f"{ADAPTERS_DIR}/{version}"
    answers: dict[str, str] = {}
    result: dict[str, Any] = {"endpoint": front, "revision": live.revision, "adapter": name, "path": path}
    front_client = None
    if job["swap_load"]:
        front_client = OpenAIClient(service_proxy_endpoint(config, JOB_NAMESPACE, front, PORT), timeout_s=30)
    model = job["served_model_name"]
    with MeasuredAct(front_client, model, task.log, what="the adapter load", warm_up=WARM_UP_ANSWERS) as act:
        for pod in sorted(before):
            with OpenAIClient(pod_proxy_endpoint(config, JOB_NAMESPACE, pod, PORT), timeout_s=60) as client:
                try:
                    client.wait_and_load_lora_adapter(name, path, timeout_s=SYNC_TIMEOUT_S, inplace=True)
                except Exception as exc:  # any failure: say which pods serve the new adapter already
                    raise AirflowException(
                        f"loading adapter {name} from {path} into pod {pod} failed: {exc}; loaded in: "
                        f"{', '.join(answers) or 'none'}"
                    ) from exc
                answers[pod] = client.complete(name, PROMPT, max_tokens=8, temperature=0).text
            task.log.info("pod %s serves adapter %s: %r", pod, name, answers[pod])
        result.update(act.report())
    after = serving_pods(kube, JOB_NAMESPACE, selector)
    if after != before:
        raise AirflowException(f"the endpoint's pods changed while the adapter loaded: {before} -> {after}")
    result.update(answers=answers, pods=len(after), restarted=0)
    return result
