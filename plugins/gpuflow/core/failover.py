"""What to do after a cloud refuses a node pool: one cloud-agnostic policy over (kind, scope).

The backends only classify (``CloudError``); this module decides. Blocks that describe the world (a
stockout, an exhausted quota) go to the shared failover memory with a TTL so later runs avoid them too;
an AUTH failure only concerns this run's connection, so it is not shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import traits
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.request import Block

# How long a failure keeps an offer out of plans. Stockouts clear within tens of minutes more often than
# not; quota needs a human (a support ticket), so it stays blocked for most of a working day.
BLOCK_TTL = {ErrorKind.CAPACITY: timedelta(minutes=30), ErrorKind.QUOTA: timedelta(hours=6)}
RUN_BLOCK_TTL = timedelta(hours=24)
MAX_TRANSIENT_RETRIES = 5
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 60.0


class Action(StrEnum):
    RETRY = "retry"  # the same offer again after ``delay_s``
    NEXT = "next"  # the next offer of the plan (after recording ``block``)
    STOP = "stop"  # fail the run: retrying or moving on cannot help


@dataclass(frozen=True, slots=True)
class Target:
    """The offer an attempt was made on, as far as blocking needs to know it."""

    cloud: str
    region: str
    zone: str | None
    instance_type: str
    capacity_type: CapacityType
    accelerator: str


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    block: Block | None = None
    shared: bool = False  # whether the block goes to the memory every run reads
    delay_s: float = 0.0


def decide(error: CloudError, target: Target, *, attempt: int, now: datetime, jitter: float) -> Decision:
    """The next step after ``error`` on ``target``; ``attempt`` counts tries of this offer from 1.

    ``jitter`` in [0, 1) spreads retries of concurrent runs apart (full jitter on the upper half).
    """
    reason = f"{error.code}: {error.message}"
    if error.kind is ErrorKind.TRANSIENT:
        if attempt <= MAX_TRANSIENT_RETRIES:
            return Decision(Action.RETRY, reason, delay_s=backoff_s(attempt, jitter))
        return Decision(Action.NEXT, f"gave up after {attempt} transient failures; last {reason}")
    if error.kind in BLOCK_TTL:
        block = block_for(target, error.scope, now + BLOCK_TTL[error.kind], reason)
        return Decision(Action.NEXT, reason, block=block, shared=True)
    if error.kind is ErrorKind.AUTH:
        block = block_for(target, Scope.CLOUD, now + RUN_BLOCK_TTL, reason)
        return Decision(Action.NEXT, f"credentials refused on {target.cloud}; {reason}", block=block)
    return Decision(Action.STOP, reason)


def backoff_s(attempt: int, jitter: float) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling from the base up to the cap, in its upper half by
    ``jitter`` in [0, 1) so concurrent runs spread apart."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1))
    return ceiling * (0.5 + jitter / 2)


def block_for(target: Target, scope: Scope, expires_at: datetime, reason: str) -> Block:
    """A wildcard block covering ``target`` at ``scope``; an offer-scoped one keeps its capacity type."""
    if scope is Scope.CLOUD:
        return Block(target.cloud, expires_at=expires_at, reason=reason)
    if scope is Scope.REGION:
        return Block(target.cloud, region=target.region, expires_at=expires_at, reason=reason)
    if scope is Scope.FAMILY:
        family = traits(target.cloud).quota_family(target.instance_type, target.accelerator)
        return Block(
            target.cloud,
            region=target.region,
            quota_family=family,
            capacity_type=target.capacity_type,
            expires_at=expires_at,
            reason=reason,
        )
    if scope is Scope.ZONE:
        return Block(target.cloud, region=target.region, zone=target.zone, expires_at=expires_at, reason=reason)
    return Block(
        target.cloud,
        region=target.region,
        zone=target.zone,
        instance_type=target.instance_type,
        capacity_type=target.capacity_type,
        expires_at=expires_at,
        reason=reason,
    )
