"""``PlanOperator``: validate the request and choose the offer to run on, before anything costs money."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseHook, BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from gpuflow.core.catalog import load_catalog
from gpuflow.core.clusters import Cluster, ClusterConfigError, Clusters
from gpuflow.core.errors import CatalogError, RequestError, UnsatisfiableRequest
from gpuflow.core.explain import format_plan
from gpuflow.core.handoffs import PlanHandoff
from gpuflow.core.job import JobRequest
from gpuflow.core.planner import plan
from gpuflow.core.request import PlanRequest
from gpuflow.core.settings import ARTIFACTS_ENV, artifacts_base, catalog_source
from gpuflow.core.storage import require_reachable_output
from gpuflow.named_endpoints import EndpointLookupError, LiveEndpoint, find_live_endpoint, live_serving
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters
from gpuflow.state.store import BlockStore

REQUEST_FIELDS = frozenset(f.name for f in fields(PlanRequest))


class PlanOperator(BaseOperator):
    """Rank the price catalog for the request and return ``{"plan": ..., "job": ...}``.

    The request comes from ``request`` or, when that is None, from the DAG's params (the trigger form).
    A bad or unsatisfiable request fails the task at once, without retries: retrying cannot fix it.

    :param request: request fields; templated.
    :param catalog: catalog path or URI; defaults to ``$GPUFLOW_CATALOG`` or the shipped catalog.
    :param for_provisioning: validate the whole job (not just the planning fields), plan only regions
        with a configured cluster, and skip offers the failover memory has blocked.
    """

    template_fields = ("request", "catalog")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        request: Mapping[str, Any] | None = None,
        catalog: str | None = None,
        for_provisioning: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request = request
        self.catalog = catalog
        self.for_provisioning = for_provisioning

    def execute(self, context: Context) -> dict[str, Any]:
        given = dict(self.request if self.request is not None else context["params"])
        try:
            adapter_base = None
            if self.for_provisioning:
                job = JobRequest.from_mapping(given)
                _check_token_connection(job.hf_token_conn_id)
                result, adapter_base = self._plan_for_provisioning(job)
            else:
                job = None
                request = PlanRequest.from_mapping({k: v for k, v in given.items() if k in REQUEST_FIELDS})
                result = plan(request, load_catalog(self.catalog or catalog_source()))
        except RequestError as exc:
            raise AirflowFailException(f"invalid request: {exc}") from exc
        except UnsatisfiableRequest as exc:
            raise AirflowFailException(f"no offer satisfies the request: {exc}") from exc
        except (CatalogError, ClusterConfigError) as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("plan:\n%s", format_plan(result))
        return PlanHandoff(result.to_dict(), job.fields() if job else None, adapter_base).to_xcom()

    def _plan_for_provisioning(self, job: JobRequest) -> tuple[Any, dict[str, str] | None]:
        """The plan, and for an adapter run what it adapts (``adapter_base``)."""
        now = datetime.now(UTC)
        remembered = BlockStore().active(now)
        if remembered:
            self.log.info("failover memory: %d offer block(s) in force", len(remembered))
        configured = clusters()
        live = self._live_endpoint(job, configured)
        where = self._endpoint_region(job, live)
        adapter_base = self._adapter_base(job, live)
        request = PlanRequest.from_mapping({**job.plan.to_dict(), "blocked": [*job.plan.blocked, *remembered], **where})
        result = plan(
            request,
            load_catalog(self.catalog or catalog_source()),
            now=now,
            clusters=configured.regions,
            zones=configured.zones,
        )
        _check_output_reachable(
            job, [configured.for_region(c.offer.cloud, c.offer.region) for c in (result.chosen, *result.fallbacks)]
        )
        return result, adapter_base

    def _live_endpoint(self, job: JobRequest, configured: Clusters) -> LiveEndpoint | None:
        """The named endpoint the run promotes onto, if it serves already."""
        if not job.endpoint_name:
            return None
        try:
            live = find_live_endpoint(job.endpoint_name, configured.by_region.values(), JOB_NAMESPACE)
        except EndpointLookupError as exc:
            raise AirflowFailException(f"{exc}; try again when the cluster answers") from exc
        if live is None:
            self.log.info("endpoint %s does not exist yet: this run creates it where it lands", job.endpoint_name)
        return live

    def _adapter_base(self, job: JobRequest, live: LiveEndpoint | None) -> dict[str, str] | None:
        """For an adapter run: the live revision it adapts, that revision's model, and the endpoint's adapters
        folder; refused before anything is paid for when the endpoint cannot load an adapter of this rank."""
        if not job.adapter_rank:
            return None
        rank = job.adapter_rank
        if live is None:
            raise RequestError(
                "adapter_rank",
                rank,
                f"0 until endpoint {job.endpoint_name} exists: create it with a whole-model run (adapter_rank 0, "
                "enable_lora true)",
            )
        facts = live_serving(live, JOB_NAMESPACE)
        if facts.max_lora_rank is None or facts.adapters_uri is None or facts.model_uri is None:
            raise RequestError(
                "adapter_rank",
                rank,
                f"0: endpoint {job.endpoint_name} serves without LoRA adapters (revision {live.revision}); promote "
                "a whole model onto it with enable_lora true first",
            )
        if rank > facts.max_lora_rank:
            raise RequestError(
                "adapter_rank", rank, f"at most {facts.max_lora_rank}, the max_lora_rank endpoint {live.name} serves"
            )
        self.log.info("adapter of rank %d on %s's model %s", rank, live.describe(), facts.model_uri)
        return {"revision": live.revision, "model_uri": facts.model_uri, "adapters_uri": facts.adapters_uri}

    def _endpoint_region(self, job: JobRequest, live: LiveEndpoint | None) -> dict[str, list[str]]:
        """For a named endpoint that serves already: its cluster's cloud and region, where the run must train and
        serve (its Service selects pods of its own cluster only; its bucket is the one its pods can read)."""
        if live is None:
            return {}
        cloud, region = live.cluster.cloud, live.cluster.region
        if cloud not in job.plan.clouds or not job.plan.allows_region(region):
            raise RequestError(
                "endpoint_name",
                job.endpoint_name,
                f"an endpoint the request's clouds and regions allow: it serves on {cloud}/{region}, which they "
                "exclude (add them, or name another endpoint)",
            )
        self.log.info("endpoint %s serves on %s: this run trains and serves there", job.endpoint_name, live.describe())
        return {"clouds": [cloud], "regions": [region]}


def _check_output_reachable(job: JobRequest, candidates: list[Cluster]) -> None:
    """Every cluster the run may land on (the choice and its fallbacks) must be able to write the outputs and
    serve the model: a path only works where the cluster is marked local."""
    reach = {cluster.name: cluster.local for cluster in candidates}
    if job.output_uri:
        require_reachable_output("output_uri", job.output_uri, reach)
    elif base := artifacts_base():
        require_reachable_output(ARTIFACTS_ENV, base, reach)


def _check_token_connection(conn_id: str) -> None:
    """The token's connection must exist and hold a token now, not when the endpoint is deployed (after the
    pool was bought and the model trained)."""
    if not conn_id:
        return
    try:
        token = BaseHook.get_connection(conn_id).password
    except AirflowNotFoundException:
        raise RequestError(
            "hf_token_conn_id", conn_id, "an existing Airflow connection (create it with the token as password)"
        ) from None
    if not token:
        raise RequestError("hf_token_conn_id", conn_id, "a connection whose password is the Hugging Face token")
