"""``PlanOperator``: choose the offer to run on, before anything costs money."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gpuflow.core.catalog import load_catalog
from gpuflow.core.errors import CatalogError, RequestError, UnsatisfiableRequest
from gpuflow.core.explain import format_plan
from gpuflow.core.planner import plan
from gpuflow.core.request import PlanRequest
from gpuflow.core.settings import catalog_source

REQUEST_FIELDS = frozenset(f.name for f in fields(PlanRequest))


class PlanOperator(BaseOperator):
    """Rank the price catalog for the request and return the plan (chosen offer, fallbacks, estimate).

    The request comes from ``request`` or, when that is None, from the DAG's params (the trigger form).
    A bad request or an unsatisfiable one fails the task at once, without retries: retrying cannot fix it.

    :param request: request fields (see ``gpuflow.core.request.PlanRequest``); templated.
    :param catalog: catalog path or URI; defaults to ``$GPUFLOW_CATALOG`` or the shipped catalog.
    """

    template_fields = ("request", "catalog")
    ui_color = "#e8f4ea"

    def __init__(self, *, request: Mapping[str, Any] | None = None, catalog: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request
        self.catalog = catalog

    def execute(self, context: Context) -> dict[str, Any]:
        given = self.request if self.request is not None else context["params"]
        try:
            request = PlanRequest.from_mapping({k: v for k, v in given.items() if k in REQUEST_FIELDS})
            result = plan(request, load_catalog(self.catalog or catalog_source()))
        except RequestError as exc:
            raise AirflowFailException(f"invalid request: {exc}") from exc
        except UnsatisfiableRequest as exc:
            raise AirflowFailException(f"no offer satisfies the request: {exc}") from exc
        except CatalogError as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("plan:\n%s", format_plan(result))
        return result.to_dict()
