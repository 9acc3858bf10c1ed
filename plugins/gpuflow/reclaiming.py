"""The janitor's side of the sweep (``gpuflow.sweep``): what it found, priced for the janitor's rules
(``gpuflow.core.janitor``), and their verdicts applied.

The janitor surveys ``gpuflow.io/managed=true`` with what is already on its way left out, and sweeps whole
clusters only: one it could not fully list or clean is reported and left for the next sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gpuflow.core.catalog import CapacityType, Offer
from gpuflow.core.janitor import NODE_POOL, Found, Verdict, machine_rate
from gpuflow.core.nodepool import NodePoolRef
from gpuflow.sweep import LISTING_POOLS, Decision, Holdings, failed_clusters, sweep


def found_in(holdings: Holdings, offers: Iterable[Offer]) -> list[Found]:
    """The cluster's pools (with GPUs and catalog price) and objects, as the janitor's rules take them."""
    offers = list(offers)
    found = []
    for status in holdings.pools:
        capacity = CapacityType.SPOT if status.spot else CapacityType.ON_DEMAND
        per_node, node_usd = machine_rate(offers, status.ref.cloud, status.ref.region, status.instance_type, capacity)
        found.append(
            Found(
                NODE_POOL,
                holdings.cluster.cloud,
                holdings.cluster.name,
                status.ref.name,
                status.labels,
                gpus=per_node * status.node_count,
                hourly_usd=None if node_usd is None else node_usd * status.node_count,
            )
        )
    found += [Found(o.kind, holdings.cluster.cloud, holdings.cluster.name, o.name, o.labels) for o in holdings.objects]
    return found


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What a janitor sweep did: the pools it asked to delete, and each cluster that failed with the error."""

    deleted_pools: list[NodePoolRef]
    failed: dict[str, str]


def reclaim(holdings: Iterable[Holdings], verdicts: Iterable[Verdict]) -> Reclaimed:
    """Delete what the verdicts condemn; returns the pools deleted and the clusters that failed, listing or
    deleting, with the error."""
    holdings = list(holdings)
    condemned = frozenset((v.found.cloud, v.found.cluster, v.found.kind, v.found.name) for v in verdicts if v.delete)
    swept = sweep(holdings, Decision(delete=condemned), whole_clusters=True)
    return Reclaimed(swept.deleted_pools, failed_clusters(holdings))


def listed_pools(holdings: Iterable[Holdings]) -> dict[str, frozenset[str]]:
    """``cloud/cluster`` -> the paths of every pool listed there (deleting ones included), for the clusters
    whose pools could be listed: where a pool is absent, it is gone."""
    return {
        h.where: frozenset([*(s.ref.path for s in h.pools), *(ref.path for ref in h.departing)])
        for h in holdings
        if LISTING_POOLS not in h.failures
    }
