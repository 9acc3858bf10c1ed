"""What the endpoint watchdog repairs: a kept endpoint's pool that lost nodes its cloud will not bring back.

A kept endpoint (``keep_endpoint_minutes``) outlives its run, so no task of the run is there when its spot node is
preempted. EKS (Auto Scaling group) and GKE (managed instance group) keep the pool's size and replace the node when
capacity returns; the Deployment's pod is rescheduled there on its own. An AKS spot pool with the Delete eviction
policy shrinks instead ("the VM is deleted", AKS docs, "Add an Azure Spot node pool"): nothing comes back, and the
endpoint's pod stays Pending until its keep-time ends. The teardown stamps a kept pool with its node count
(``naming.KEPT_NODES_LABEL``); a pool that holds fewer is scaled back to it, on the same offer, where the endpoint's
Deployment (which selects the pool by name) finds its node again. A cloud that refuses for capacity is asked again
at the next watch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gpuflow.core import naming
from gpuflow.core.clouds import traits
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, PoolState


@dataclass(frozen=True, slots=True)
class Repair:
    """Scale ``pool`` from ``nodes_now`` back to ``nodes_kept`` nodes."""

    pool: NodePoolRef
    nodes_now: int
    nodes_kept: int

    def describe(self) -> str:
        lost = self.nodes_kept - self.nodes_now
        where = f"{self.pool.cloud}/{self.pool.cluster}/{self.pool.name}"
        cloud = traits(self.pool.cloud).kubernetes
        return (
            f"kept endpoint pool {where} holds {self.nodes_now} of its {self.nodes_kept} node(s) ({lost} lost, "
            f"which {cloud} does not replace): scaling it back to {self.nodes_kept}"
        )


def repairs(pools: Iterable[NodePoolStatus], now: datetime) -> list[Repair]:
    """The kept pools (expiry still ahead, ready) that hold fewer nodes than they were kept with."""
    found = []
    for status in pools:
        kept = naming.kept_nodes(status.labels)
        until = naming.expires_at(status.labels)
        if kept is None or until is None or until <= now or status.state is not PoolState.READY:
            continue
        if status.node_count < kept:
            found.append(Repair(status.ref, status.node_count, kept))
    return found
