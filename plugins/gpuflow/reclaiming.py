"""Find what is labelled as gpuflow's on the configured clusters, and delete what the janitor's rules condemn.

The rules are ``gpuflow.core.janitor``; this module applies them to real clusters: it lists node pools (through
the cloud backends) and Kubernetes objects (in the job namespace) carrying ``gpuflow.io/managed=true``,
describes them as ``Found``, and deletes condemned objects before condemned pools. It asks for nothing but
that label, so nothing unlabelled is ever seen. Pools already deleting, terminating objects and pods owned
by a Deployment (they go with it) are left out: a second sweep finds nothing the first one condemned. A
cluster whose API fails is recorded with its error and the others are still swept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.core import naming
from gpuflow.core.catalog import CapacityType, Offer
from gpuflow.core.clusters import Cluster
from gpuflow.core.janitor import NODE_POOL, Found, Verdict, machine_rate
from gpuflow.core.nodepool import NodePoolStatus, PoolState
from gpuflow.kube.cluster import KubeObject, api_client, delete_objects, labelled_objects

log = logging.getLogger(__name__)
MANAGED = {naming.MANAGED_LABEL: "true"}


@dataclass
class ClusterSweep:
    """What one cluster holds that is ours, or why it could not be listed."""

    cluster: Cluster
    backend: CloudBackend
    namespace: str
    pools: list[NodePoolStatus] = field(default_factory=list)
    objects: list[KubeObject] = field(default_factory=list)
    client: Any = None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.cluster.cloud}/{self.cluster.name}"


def survey(cluster: Cluster, namespace: str, backends: Callable[[Cluster], CloudBackend] = backend_for) -> ClusterSweep:
    """List the cluster's managed pools and objects; any failure is kept in ``error`` instead of raised."""
    sweep = ClusterSweep(cluster, backends(cluster), namespace)
    try:
        pools = sweep.backend.list_node_pools(MANAGED)
        sweep.pools = [p for p in pools if p.state not in (PoolState.DELETING, PoolState.GONE)]
        sweep.client = api_client(sweep.backend.kube_config())
        objects = labelled_objects(sweep.client, namespace, f"{naming.MANAGED_LABEL}=true")
        sweep.objects = [o for o in objects if not o.owned and not o.deleting]
    except Exception as exc:  # any cloud or Kubernetes failure: report this cluster, sweep the others
        log.warning("cannot list %s: %s", sweep.where, exc)
        sweep.error = f"{type(exc).__name__}: {exc}"
    return sweep


def found_in(sweep: ClusterSweep, offers: Iterable[Offer]) -> list[Found]:
    """The sweep's pools (with GPUs and catalog price) and objects, as the janitor's rules take them."""
    offers = list(offers)
    found = []
    for status in sweep.pools:
        capacity = CapacityType.SPOT if status.spot else CapacityType.ON_DEMAND
        per_node, node_usd = machine_rate(offers, status.ref.cloud, status.ref.region, status.instance_type, capacity)
        found.append(
            Found(
                NODE_POOL,
                sweep.cluster.cloud,
                sweep.cluster.name,
                status.ref.name,
                status.labels,
                gpus=per_node * status.node_count,
                hourly_usd=None if node_usd is None else node_usd * status.node_count,
            )
        )
    found += [Found(o.kind, sweep.cluster.cloud, sweep.cluster.name, o.name, o.labels) for o in sweep.objects]
    return found


def reclaim(sweeps: Iterable[ClusterSweep], verdicts: Iterable[Verdict]) -> dict[str, str]:
    """Delete the condemned objects on every cluster, then the condemned pools (a request each; the cloud
    finishes it). Returns the clusters that failed, listing or deleting, with the error."""
    sweeps = list(sweeps)
    condemned = {(v.found.cloud, v.found.cluster, v.found.kind, v.found.name) for v in verdicts if v.delete}
    failed = {s.where: s.error for s in sweeps if s.error}
    live = [s for s in sweeps if not s.error]
    for sweep in live:
        doomed = [o for o in sweep.objects if _key(sweep, o.kind, o.name) in condemned]
        try:
            delete_objects(sweep.client, sweep.namespace, doomed)
        except Exception as exc:  # report the cluster, carry on with the others
            failed[sweep.where] = f"deleting objects: {type(exc).__name__}: {exc}"
    for sweep in live:
        for status in sweep.pools:
            if _key(sweep, NODE_POOL, status.ref.name) not in condemned or sweep.where in failed:
                continue
            try:
                sweep.backend.delete_node_pool(status.ref)
            except Exception as exc:  # report the cluster, carry on with the others
                failed[sweep.where] = f"deleting node pool {status.ref.name}: {type(exc).__name__}: {exc}"
    return {where: error for where, error in failed.items() if error}


def _key(sweep: ClusterSweep, kind: str, name: str) -> tuple[str, str, str, str]:
    return (sweep.cluster.cloud, sweep.cluster.name, kind, name)
