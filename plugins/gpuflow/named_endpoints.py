"""Named endpoints on gpuflow's clusters: find the live one, retire old revisions, delete one on request.

A named endpoint (``endpoint_name``) is a front Service, named as the endpoint and labelled with it
(``naming.ENDPOINT_LABEL``), selecting the pods of one revision: a Deployment and Service of some run, on that run's
pool. The run that promotes a revision relabels the front Service with its own run label, and its teardown stamps
its revision and pool with the endpoint label instead of deleting them. So under the endpoint's label, everything
not of the front Service's run is a retired revision, and goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gpuflow.clouds.access import kube_config
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import describe
from gpuflow.core.janitor import NODE_POOL
from gpuflow.kube.cluster import api_client, read_service
from gpuflow.kube.serving import ServedFacts, served_facts
from gpuflow.sweep import Decision, Key, Swept, survey, sweep, wait_until_gone


class EndpointLookupError(Exception):
    """A cluster could not be asked whether it serves the endpoint: a second one must not be made elsewhere."""


@dataclass(frozen=True, slots=True)
class LiveEndpoint:
    """Where a named endpoint serves, which revision its front Service selects, and that revision's run."""

    name: str
    cluster: Cluster
    revision: str
    run_key: str

    def describe(self) -> str:
        return f"{self.name} on {self.cluster.cloud}/{self.cluster.name} (revision {self.revision})"


@dataclass(frozen=True, slots=True)
class Removed:
    """What removing revisions did: what was deleted, the runs they were of, pools not yet gone, failed steps."""

    swept: Swept
    run_keys: frozenset[str]
    left: tuple[str, ...]
    failures: dict[str, str]

    @property
    def problems(self) -> list[str]:
        """What went wrong, for an error message (empty when all is gone)."""
        return [*(f"{where}: {error}" for where, error in self.failures.items()), *(f"{p} not gone" for p in self.left)]


def live_endpoint(name: str, cluster: Cluster, namespace: str) -> LiveEndpoint | None:
    """The endpoint ``name`` if its front Service is on ``cluster``."""
    service = read_service(api_client(kube_config(cluster)), namespace, name)
    if service is None or service["labels"].get(naming.ENDPOINT_LABEL) != name:
        return None
    revision = service["selector"].get(naming.REVISION_LABEL, "")
    return LiveEndpoint(name, cluster, revision, service["labels"].get(naming.RUN_LABEL, ""))


def live_serving(live: LiveEndpoint, namespace: str) -> ServedFacts:
    """What the live revision serves (its model's URI, its adapters folder and rank), from its Deployment."""
    from kubernetes import client as k8s

    client = api_client(kube_config(live.cluster))
    deployment = k8s.AppsV1Api(client).read_namespaced_deployment(live.revision, namespace)
    return served_facts(client.sanitize_for_serialization(deployment))


def find_live_endpoint(name: str, clusters: Iterable[Cluster], namespace: str) -> LiveEndpoint | None:
    """The endpoint ``name`` on whichever configured cluster serves it; raises ``EndpointLookupError`` naming a
    cluster that could not be asked (the endpoint might be there)."""
    for cluster in clusters:
        try:
            found = live_endpoint(name, cluster, namespace)
        except Exception as exc:  # any cloud or Kubernetes failure: the answer is unknown, say where
            raise EndpointLookupError(
                f"cannot tell whether endpoint {name} serves on {cluster.cloud}/{cluster.name}: {describe(exc)}"
            ) from exc
        if found is not None:
            return found
    return None


def retire_old_revisions(
    name: str, cluster: Cluster, namespace: str, live_run_key: str, *, timeout_s: float, poll_interval_s: float
) -> Removed:
    """Delete everything under the endpoint's label on ``cluster`` that is not of ``live_run_key``'s run (the old
    revisions' Deployments, Services, Secrets and pools), and wait for their pools to go."""
    return _remove(name, [cluster], namespace, live_run_key, timeout_s, poll_interval_s)


def delete_endpoint(
    name: str, clusters: Iterable[Cluster], namespace: str, *, timeout_s: float, poll_interval_s: float
) -> Removed:
    """Delete the endpoint ``name`` whole (front Service, every revision, their pools) on every cluster."""
    return _remove(name, clusters, namespace, None, timeout_s, poll_interval_s)


def _remove(
    name: str,
    clusters: Iterable[Cluster],
    namespace: str,
    spare_run_key: str | None,
    timeout_s: float,
    poll_interval_s: float,
) -> Removed:
    """Delete every object (not owned by another) and pool under the endpoint's label, except ``spare_run_key``'s."""
    label = {naming.ENDPOINT_LABEL: name}
    holdings = [survey(cluster, namespace, label, settled_out=False) for cluster in clusters]
    runs: set[str] = set()
    doomed: set[Key] = set()
    for held in holdings:
        for obj in held.objects:
            run = obj.labels.get(naming.RUN_LABEL, "")
            if run != spare_run_key and not obj.owned:
                doomed.add(held.key(obj.kind, obj.name))
                runs.add(run)
        for pool in held.pools:
            run = pool.labels.get(naming.RUN_LABEL, "")
            if run != spare_run_key:
                doomed.add(held.key(NODE_POOL, pool.ref.name))
                runs.add(run)
    decision = Decision(frozenset(doomed))
    swept = sweep(holdings, decision, whole_clusters=False)
    left = wait_until_gone(swept, label, decision, timeout_s, poll_interval_s)
    return Removed(
        swept,
        frozenset(runs - {""}),
        tuple(f"{s.ref.cloud}/{s.ref.cluster}/{s.ref.name}" for s in left),
        {f"{h.where}: {step}": error for h in holdings for step, error in h.failures.items()},
    )
