"""One sweep of what a label owns on gpuflow's clusters, shared by the teardown (a run's label) and the
janitor (everything managed): survey every cluster, let the caller's rules decide per resource, delete
objects before pools (while their nodes still exist), and report per cluster.

Only resources carrying the label are listed, so nothing unlabelled is ever seen. A cluster whose API
fails (an API down, expired credentials) is reported with its error and does not spare the others. What
the rules keep with a stamp (the teardown's keep-time expiry) is labelled instead of deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.clouds.calls import retrying
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import describe
from gpuflow.core.janitor import NODE_POOL
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, PoolState
from gpuflow.kube.cluster import KubeObject, api_client, delete_objects, label_objects, labelled_objects

log = logging.getLogger(__name__)
MANAGED = {naming.MANAGED_LABEL: "true"}
LISTING_POOLS = "listing node pools"
LISTING_OBJECTS = "listing objects"

Key = tuple[str, str, str, str]  # cloud, cluster, kind (NODE_POOL for a pool), name


@dataclass
class Holdings:
    """What one cluster holds under the label, and each step that failed on it (step -> error); ``departing``:
    pools a settled-out survey left out because they are already deleting."""

    cluster: Cluster
    backend: CloudBackend
    namespace: str
    pools: list[NodePoolStatus] = field(default_factory=list)
    objects: list[KubeObject] = field(default_factory=list)
    departing: list[NodePoolRef] = field(default_factory=list)
    client: Any = None
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.cluster.cloud}/{self.cluster.name}"

    def key(self, kind: str, name: str) -> Key:
        return (self.cluster.cloud, self.cluster.name, kind, name)

    def note(self, step: str, exc: Exception) -> None:
        """A step that failed here: logged now, reported with the cluster at the end."""
        log.warning("%s on %s failed: %s", step, self.where, describe(exc))
        self.failures[step] = describe(exc)


@dataclass(frozen=True, slots=True)
class Decision:
    """The caller's rules applied: what to delete, what to keep with ``stamp`` labels; the rest is left."""

    delete: frozenset[Key]
    stamped: frozenset[Key] = frozenset()
    stamp: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Swept:
    """What a sweep did on every cluster; ``requested``: the clusters whose pools were all asked to go."""

    deleted_objects: list[str] = field(default_factory=list)
    stamped_objects: list[str] = field(default_factory=list)
    deleted_pools: list[NodePoolRef] = field(default_factory=list)
    requested: list[Holdings] = field(default_factory=list)


def survey(
    cluster: Cluster,
    namespace: str,
    label: Mapping[str, str] = MANAGED,
    *,
    settled_out: bool = True,
    backends: Callable[[Cluster], CloudBackend] = backend_for,
) -> Holdings:
    """List the cluster's pools and objects carrying ``label``; a failure is noted, not raised.

    ``settled_out`` leaves out what is already on its way: pools deleting, terminating objects, and pods a
    Deployment owns (they go with it), so a second sweep finds nothing the first one condemned.
    """
    holdings = Holdings(cluster, backends(cluster), namespace)
    try:
        pools = holdings.backend.list_node_pools(label)
        holdings.pools = [p for p in pools if not settled_out or p.state not in (PoolState.DELETING, PoolState.GONE)]
        holdings.departing = [p.ref for p in pools if settled_out and p.state is PoolState.DELETING]
    except Exception as exc:  # any cloud failure: report this cluster, survey the others
        holdings.note(LISTING_POOLS, exc)
    try:
        holdings.client = api_client(holdings.backend.kube_config())
        objects = labelled_objects(holdings.client, namespace, _selector(label))
        holdings.objects = [o for o in objects if not settled_out or not (o.owned or o.deleting)]
    except Exception as exc:  # any cloud or Kubernetes failure: as above
        holdings.note(LISTING_OBJECTS, exc)
    return holdings


def sweep(holdings: Iterable[Holdings], decision: Decision, *, whole_clusters: bool) -> Swept:
    """Apply ``decision``: every cluster's objects first, then its pools (one request each; the cloud
    finishes it). ``whole_clusters``: a cluster is left alone once any step on it failed (the janitor does
    not act on half a listing); else all that can be done on it is done (a teardown spares no GPU)."""
    holdings = list(holdings)
    swept = Swept()
    for cluster in holdings:
        if not (whole_clusters and cluster.failures) and LISTING_OBJECTS not in cluster.failures:
            _sweep_objects(cluster, decision, swept)
    for cluster in holdings:
        if not (whole_clusters and cluster.failures) and LISTING_POOLS not in cluster.failures:
            _sweep_pools(cluster, decision, swept)
    return swept


def _sweep_objects(cluster: Holdings, decision: Decision, swept: Swept) -> None:
    doomed = [o for o in cluster.objects if cluster.key(o.kind, o.name) in decision.delete]
    stamped = [o for o in cluster.objects if cluster.key(o.kind, o.name) in decision.stamped]
    try:
        delete_objects(cluster.client, cluster.namespace, doomed)
        if stamped:
            label_objects(cluster.client, cluster.namespace, stamped, decision.stamp)
    except Exception as exc:  # any Kubernetes failure: report this cluster, sweep the others
        cluster.note("deleting objects", exc)
        return
    if doomed:
        log.info("deleted on %s: %s", cluster.cluster.name, ", ".join(o.ref for o in doomed))
    swept.deleted_objects += [o.ref for o in doomed]
    swept.stamped_objects += [o.ref for o in stamped]


def _sweep_pools(cluster: Holdings, decision: Decision, swept: Swept) -> None:
    """Stamp or delete each pool of the cluster; a refusal the cloud calls transient is tried again, and one
    pool that cannot be deleted is reported without sparing the others. A cluster whose pools all went is
    waited on (``wait_until_gone``)."""
    failed = False
    for status in cluster.pools:
        key, ref = cluster.key(NODE_POOL, status.ref.name), status.ref
        what = f"{'stamping' if key in decision.stamped else 'deleting'} node pool {ref.name}"
        try:
            if key in decision.stamped:
                retrying(partial(cluster.backend.label_node_pool, ref, decision.stamp), what=what)
            elif key in decision.delete:
                log.info("deleting node pool %s on %s", ref.name, cluster.cluster.name)
                retrying(partial(cluster.backend.delete_node_pool, ref), what=what)
                swept.deleted_pools.append(ref)
        except Exception as exc:  # any cloud failure: report this pool, sweep the others
            cluster.note(what, exc)
            failed = True
    if not failed:
        swept.requested.append(cluster)


def wait_until_gone(
    swept: Swept, label: Mapping[str, str], decision: Decision, timeout_s: float, poll_interval_s: float
) -> list[NodePoolStatus]:
    """The pools under ``label`` not yet gone (stamped ones aside) once all are or the timeout has passed.

    Waits on the clusters whose pools were all requested to go; one whose listing fails meanwhile is noted
    and no longer waited on."""
    deadline = time.monotonic() + timeout_s
    waiting_on = list(swept.requested)
    while True:
        left = []
        for cluster in list(waiting_on):
            try:
                statuses = cluster.backend.list_node_pools(label)
            except Exception as exc:  # any cloud failure: note it, go on waiting on the other clusters
                cluster.note("checking node pools", exc)
                waiting_on.remove(cluster)
                continue
            left += [
                s
                for s in statuses
                if s.state is not PoolState.GONE and cluster.key(NODE_POOL, s.ref.name) not in decision.stamped
            ]
        if not left or time.monotonic() >= deadline:
            return left
        log.info("waiting for %d node pool(s) to finish deleting", len(left))
        time.sleep(poll_interval_s)


def failed_clusters(holdings: Iterable[Holdings]) -> dict[str, str]:
    """Each cluster where a step failed, with what failed."""
    return {
        h.where: "; ".join(f"{step}: {error}" for step, error in h.failures.items()) for h in holdings if h.failures
    }


def _selector(label: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in label.items())
