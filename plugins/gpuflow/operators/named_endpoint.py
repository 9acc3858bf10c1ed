"""``promote``: put the run's model behind its named endpoint (``endpoint_name``), or leave the live one serving.

The new revision already serves beside the live one, on the run's own pool, behind its own Service: it was
deployed, waited for and smoke-tested there by the tasks before. This task
1. benchmarks the live model and the new one on the same prompts (``gpuflow.serving.gate``); if the new one fails
   the gate, the task fails with the gate's figures, the live model goes on serving, and the run's teardown deletes
   the new revision and its pool as usual;
2. switches the endpoint's front Service to the new revision (one selector: new requests go to the new pods, those
   in flight finish on the old ones), and records it (XCom ``promoted``: the teardown then keeps the revision and its
   pool, stamped with the endpoint's label, instead of deleting them);
3. lets the old revision drain (``GPUFLOW_SWAP_DRAIN_S``), then deletes it and its pool, and gives back its GPU lease.

With ``swap_load`` a steady load runs through the front Service from before the switch to after the old revision is
gone, and its failed requests and latency are reported. The first run of a named endpoint creates the front Service
(gated on its own failures only). A new try after the switch finds its own revision live and only retires the old.
An adapter run (``adapter_rank``) deployed no revision: its adapter is loaded into the live one
(``adapter_promotion``).

One change to an endpoint at a time: a promotion (from its gate to the old revision's deletion, or an adapter's
load) and ``gpu_endpoint_delete`` hold the endpoint's lock in the state database (``changing_endpoint``); another
run's promotion onto the same endpoint waits, logging whose change it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.settings import poll_interval_s, swap_drain_s
from gpuflow.kube.cluster import api_client, apply
from gpuflow.kube.serving import EndpointSpec, front_service_manifest
from gpuflow.named_endpoints import (
    LiveEndpoint,
    Removed,
    delete_endpoint,
    live_endpoint,
    retire_old_revisions,
)
from gpuflow.operators.adapter_promotion import promote_adapter
from gpuflow.operators.endpoint import EndpointTask
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters, run_of
from gpuflow.operators.teardown import DEFAULT_DELETE_TIMEOUT_S, PROMOTED_XCOM
from gpuflow.provisioning import Run
from gpuflow.serving.benchmark import BenchmarkConfig, BenchmarkReport, run_benchmark
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.gate import GateBounds, GateVerdict, judge
from gpuflow.serving.load import MeasuredAct
from gpuflow.serving.vllm_args import PORT
from gpuflow.state.admission import Leases
from gpuflow.state.endpoint_locks import EndpointLocks
from gpuflow.state.ledger import Ledger

GATE_XCOM = "gate"  # the gate's verdict: passed, reasons, figures
GATE_REQUESTS = 16  # per model; the same prompts for both
WARM_UP_ANSWERS = 20  # answers through the front before the switch: the "before" latency
# How long an endpoint's lock holds unless given back: longer than any promotion (gate, drain, the old revision's
# deletion within DEFAULT_DELETE_TIMEOUT_S) or deletion; a lock left by a killed task blocks others at most this long.
LOCK_HOLD = timedelta(hours=1)


class PromoteOperator(EndpointTask):
    """Gate the run's revision against the live model and switch the named endpoint to it; a run without
    ``endpoint_name`` has nothing to promote."""

    ui_color = "#dff5e1"
    for_adapters = True

    def work(self, context: Context) -> dict[str, Any] | None:
        job = self.job(context)
        front = job.get("endpoint_name", "")
        if not front:
            self.log.info("no endpoint_name: the run's own endpoint is not promoted anywhere")
            return None
        with changing_endpoint(front, run_of(context), self.log):
            if job.get("adapter_rank"):
                return promote_adapter(self, context, job, front)
            return self._promote(context, job, front)

    def _promote(self, context: Context, job: dict[str, Any], front: str) -> dict[str, Any]:
        """Gate, switch and retire, holding the endpoint's lock."""
        pool = self.ready_pool(context)
        spec = self.spec(context, pool)
        live = live_endpoint(front, pool.cluster, JOB_NAMESPACE)
        if live is not None and live.revision == spec.name:
            self.log.info("endpoint %s already serves this run's revision (a new try): retiring the old", front)
            self._retire(context, live)
            return {"endpoint": front, "revision": spec.name, "previous": None}
        verdict = self._gate(context, live)
        self.log.info("promotion gate for %s: %s", spec.name, verdict.figures)
        context["ti"].xcom_push(key=GATE_XCOM, value=verdict.to_dict())  # readable through the REST API, pass or fail
        if not verdict.passed:
            raise AirflowFailException(
                f"promotion gate failed for {spec.name} onto endpoint {front}: {'; '.join(verdict.reasons)} "
                f"({verdict.figures}). The live model keeps serving; this run's revision is deleted by its teardown."
            )
        result: dict[str, Any] = {"endpoint": front, "revision": spec.name, "previous": live.revision if live else None}
        client = self._front_client(context, front) if live is not None and job["swap_load"] else None
        with MeasuredAct(client, job["served_model_name"], self.log, what="the swap", warm_up=WARM_UP_ANSWERS) as act:
            self._switch(context, spec, live)
            if live is not None:
                self._retire(context, live)
            result.update(act.report(settle_s=2))  # answers after the old revision is gone, too
        return result

    def _gate(self, context: Context, live: LiveEndpoint | None) -> GateVerdict:
        job = self.job(context)
        if live is not None:
            self._check_same_model_name(context, live)
        config = BenchmarkConfig(
            model=job["served_model_name"],
            num_prompts=GATE_REQUESTS,
            request_rate=job["benchmark_rate"],
            input_len=32,
            output_len=16,
        )
        live_report: BenchmarkReport | None = None
        if live is not None:
            with self._front_client(context, live.name) as client:
                live_report = run_benchmark(client, config)
            if not live_report.completed:  # a broken live model is replaced by any new one that works
                self.log.warning("the live model answered none of the gate's requests: %s", live_report.errors[:1])
                live_report = None
        with self.client(context) as client:
            candidate = run_benchmark(client, config)
        if candidate.failed:
            self.recover_if_node_lost(context)  # a lost node is the cloud's doing, not the model's
        bounds = GateBounds(job["gate_ttft_p99_ratio"], job["gate_throughput_ratio"])
        return judge(candidate, live_report, bounds)

    def _check_same_model_name(self, context: Context, live: LiveEndpoint) -> None:
        """The endpoint's clients ask for the live model by name: a new name would answer them 404 after the swap."""
        name = self.job(context)["served_model_name"]
        try:
            with self._front_client(context, live.name) as client:
                served = client.models()
        except Exception as exc:  # any failure: a live model that does not answer has no clients to keep
            self.log.warning("the live model does not list its models (%s): not checking its name", exc)
            return
        if name not in served:
            raise AirflowFailException(
                f"served_model_name {name!r} is not the name endpoint {live.name} serves ({', '.join(served)}): its "
                "clients would get 404 after the swap. Keep the endpoint's name, or use another endpoint_name."
            )

    def _switch(self, context: Context, spec: EndpointSpec, live: LiveEndpoint | None) -> None:
        """Point the front Service at ``spec``'s revision (creating it for the endpoint's first), and say so."""
        apply(api_client(kube_config(self.ready_pool(context).cluster)), [front_service_manifest(spec)])
        context["ti"].xcom_push(key=PROMOTED_XCOM, value={"endpoint": spec.front, "revision": spec.name})
        was = f" (was {live.revision})" if live else " (its first revision)"
        self.log.info("endpoint %s now serves revision %s%s", spec.front, spec.name, was)

    def _retire(self, context: Context, live: LiveEndpoint) -> None:
        """Let the old revision drain, then delete it and its pool; fail naming what could not be deleted (the new
        revision serves whatever happens here, and the next promotion retries the rest)."""
        drain = swap_drain_s()
        self.log.info("old revision %s drains for %.0f s, then goes", live.revision, drain)
        time.sleep(drain)
        run = run_of(context)
        removed = retire_old_revisions(
            live.name,
            live.cluster,
            JOB_NAMESPACE,
            naming.run_key(run.dag_id, run.run_id),
            timeout_s=DEFAULT_DELETE_TIMEOUT_S,
            poll_interval_s=poll_interval_s(),
        )
        settle(removed, f"revision replaced by {self.name(context)}", self.log)
        if removed.problems:
            raise AirflowException(
                f"endpoint {live.name} serves the new revision, but retiring the old was incomplete: "
                + "; ".join(removed.problems)
                + " (the next promotion, or gpu_endpoint_delete, deletes the rest)"
            )

    def _front_client(self, context: Context, front: str) -> OpenAIClient:
        config = kube_config(self.ready_pool(context).cluster)
        return OpenAIClient(service_proxy_endpoint(config, JOB_NAMESPACE, front, PORT), timeout_s=30)


class DeleteEndpointOperator(BaseOperator):
    """Delete the named endpoint ``endpoint_name`` whole on every configured cluster: its front Service, every
    revision and their pools; succeeds when nothing of it is left (also when there was nothing)."""

    template_fields = ("endpoint_name",)
    ui_color = "#f6dede"

    def __init__(self, *, endpoint_name: str, delete_timeout_s: float = DEFAULT_DELETE_TIMEOUT_S, **kwargs: Any):
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.delete_timeout_s = delete_timeout_s

    def execute(self, context: Context) -> dict[str, Any]:
        name = self.endpoint_name
        if not name:
            raise AirflowFailException("endpoint_name is empty: name the endpoint to delete")
        with changing_endpoint(name, run_of(context), self.log):
            removed = delete_endpoint(
                name,
                clusters().by_region.values(),
                JOB_NAMESPACE,
                timeout_s=self.delete_timeout_s,
                poll_interval_s=poll_interval_s(),
            )
        settle(removed, f"endpoint {name} deleted", self.log)
        deleted = removed.swept.deleted_objects + [p.name for p in removed.swept.deleted_pools]
        self.log.info("endpoint %s: deleted %s", name, ", ".join(deleted) or "nothing (no such endpoint)")
        if removed.problems:
            raise AirflowException(f"endpoint {name} not wholly deleted: " + "; ".join(removed.problems))
        return {"endpoint": name, "deleted": deleted}


@contextmanager
def changing_endpoint(
    endpoint: str,
    run: Run,
    log: Any,
    *,
    locks: EndpointLocks | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[None]:
    """Hold ``endpoint``'s lock (``gpuflow.state.endpoint_locks``) for ``run`` while the block runs, waiting while
    someone else changes the endpoint; the wait is logged whenever its holder changes."""
    locks = locks or EndpointLocks()
    holder, detail = naming.run_key(run.dag_id, run.run_id), f"run {run.run_id} of {run.dag_id}"
    seen: str | None = None
    while (other := locks.take(endpoint, holder, detail, now=clock(), hold=LOCK_HOLD)) is not None:
        if other.holder != seen:
            seen = other.holder
            log.info(
                "endpoint %s is being changed by %s (since %s): waiting until it is done, or until its lock "
                "expires at %s",
                endpoint,
                other.detail,
                other.taken_at.isoformat(timespec="seconds"),
                other.expires_at.isoformat(timespec="seconds"),
            )
        sleep(poll_interval_s())
    if seen is not None:
        log.info("endpoint %s: the change before this one is done", endpoint)
    try:
        yield
    finally:
        locks.release(endpoint, holder)


def settle(removed: Removed, why: str, log: Any) -> None:
    """After revisions were removed: close the cost entries of their deleted pools and give back the GPU leases of
    the runs they were of (the janitor would, later)."""
    now = datetime.now(UTC)
    ledger = Ledger()
    for pool in removed.swept.deleted_pools:
        for entry in ledger.close(pool.path, now, why):
            log.info("closed the cost entry of %s (run %s): %.4f USD", pool.path, entry.run_id, entry.cost_usd)
    for key in removed.run_keys:
        if Leases().release(key, now=now):
            log.info("GPU lease of run %s released: its revision is gone", key)
