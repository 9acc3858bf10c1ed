"""What the pipeline's tasks hand each other through XCom, as typed records: the plan, the pool, the endpoint.

Each record's ``to_xcom()`` is the JSON dict the producing task has always returned, key for key, so a run
started before an upgrade resumes and whoever reads the XComs (tests, scripts) sees what it saw before.
``from_xcom()`` names the task's XCom and the missing key instead of a bare ``KeyError`` deep in a consumer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import GpuflowError
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec


class HandoffError(GpuflowError, KeyError):
    """An XCom lacks what its reader needs (a task renamed a key, or a foreign value was pushed)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _get(data: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise HandoffError(f"the {what} XCom has no {key!r} (it has {sorted(data)})") from None


def cluster_fields(cluster: Cluster) -> dict[str, Any]:
    """A cluster as plain data (XCom, trigger kwargs); ``Cluster(**fields)`` rebuilds it."""
    return {**asdict(cluster), "settings": dict(cluster.settings)}


@dataclass(frozen=True, slots=True)
class PlanHandoff:
    """``plan``'s XCom: the ranked plan (``Plan.to_dict()``) and, when planned for provisioning, the job's fields;
    for an adapter run, what it adapts (``revision``, ``model_uri``, ``adapters_uri`` of the named endpoint's live
    revision when planned)."""

    plan: dict[str, Any]
    job: dict[str, Any] | None = None
    adapter_base: dict[str, str] | None = None  # an adapter run's: the live revision, its model and adapters folder

    def to_xcom(self) -> dict[str, Any]:
        return {"plan": self.plan, "job": self.job, "adapter_base": self.adapter_base}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> PlanHandoff:
        plan = _get(data, "plan", "plan")
        for key in ("chosen", "fallbacks"):
            _get(plan, key, "plan's plan")
        return cls(plan=dict(plan), job=data.get("job"), adapter_base=data.get("adapter_base"))

    @property
    def choices(self) -> list[dict[str, Any]]:
        """The plan's options in failover order: the chosen one, then the fallbacks."""
        return [self.plan["chosen"], *self.plan["fallbacks"]]

    @property
    def estimated_total_usd(self) -> float:
        return float(_get(self.plan, "estimated_total_usd", "plan's plan"))

    def job_fields(self) -> dict[str, Any]:
        """The validated job (``JobRequest.fields()``); only a plan made for provisioning has one."""
        if self.job is None:
            raise HandoffError("the plan XCom has no job: its plan task was not made for provisioning")
        return self.job


@dataclass(frozen=True, slots=True)
class PoolHandoff:
    """The pool a run holds: requested by ``create_node_pool``, ready once ``wait_node_pool`` returns it.

    ``index``: its option in the plan's ``choices``; ``choice``: that option; ``attempts``: each try so far,
    failovers included; ``requested_at``: ISO time of the first request (the cost report counts from it).
    """

    index: int
    choice: dict[str, Any]
    pool: NodePoolRef
    cluster: Cluster
    resource: str
    attempts: tuple[str, ...]
    requested_at: str

    @classmethod
    def of(
        cls, spec: NodePoolSpec, index: int, choice: Mapping[str, Any], attempts: Sequence[str], requested_at: str
    ) -> PoolHandoff:
        return cls(index, dict(choice), spec.ref, spec.cluster, spec.resource_name, tuple(attempts), requested_at)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "choice": self.choice,
            "pool": self.pool.to_dict(),
            "cluster": cluster_fields(self.cluster),
            "resource": self.resource,
            "attempts": list(self.attempts),
            "requested_at": self.requested_at,
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> PoolHandoff:
        what = "node pool"
        return cls(
            index=int(_get(data, "index", what)),
            choice=dict(_get(data, "choice", what)),
            pool=NodePoolRef.from_dict(_get(data, "pool", what)),
            cluster=Cluster(**_get(data, "cluster", what)),
            resource=str(_get(data, "resource", what)),
            attempts=tuple(_get(data, "attempts", what)),
            requested_at=str(_get(data, "requested_at", what)),
        )


@dataclass(frozen=True, slots=True)
class DeployedEndpoint:
    """``deploy_endpoint``'s XCom: the applied endpoint and the model it loads."""

    name: str
    namespace: str
    model: str
    served_model_name: str

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> DeployedEndpoint:
        return cls(
            **{key: str(_get(data, key, "endpoint")) for key in ("name", "namespace", "model", "served_model_name")}
        )


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """A serving endpoint: the ``EndpointTrigger``'s event ``ref`` and ``wait_endpoint``'s XCom."""

    cluster: str  # the cluster's name
    namespace: str
    name: str

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> EndpointRef:
        return cls(**{key: str(_get(data, key, "endpoint")) for key in ("cluster", "namespace", "name")})


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """What the teardown could not confirm deleted (its ``unconfirmed`` XCom, pushed whether it succeeds or
    fails): pools still there when it gave up waiting, and clusters where a step failed, on which any pool of the
    run may remain. The cost report records the run's pool as an open entry when this covers it."""

    pools: tuple[NodePoolRef, ...] = ()
    clusters: tuple[tuple[str, str], ...] = ()  # (cloud, cluster)

    def covers(self, pool: NodePoolRef) -> bool:
        return pool in self.pools or (pool.cloud, pool.cluster) in self.clusters

    def to_xcom(self) -> dict[str, Any]:
        return {"pools": [p.to_dict() for p in self.pools], "clusters": [list(c) for c in self.clusters]}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Unconfirmed:
        what = "teardown's unconfirmed"
        return cls(
            pools=tuple(NodePoolRef.from_dict(p) for p in _get(data, "pools", what)),
            clusters=tuple((str(cloud), str(name)) for cloud, name in _get(data, "clusters", what)),
        )
