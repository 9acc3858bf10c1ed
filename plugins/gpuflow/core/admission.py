"""Admission: how many GPUs gpuflow's runs may hold at once, counted in GPUs, overall and per cloud.

Airflow's ``gpu`` pool counts task slots, and a run frees its slot while its node pool still exists (during the
teardown, between retries), so slots do not cap what is provisioned. A lease does: a run asks for one before its
first pool is created and gives it back only once its pools are confirmed deleted (by its teardown, or by the
janitor for a run that died). Leases are granted strictly by arrival: a lease that does not fit waits, and so does
every later one, so a large job is never starved by small ones overtaking it.

A lease is counted against the cloud of the plan's first option, where its first pool is created. A run that
fails over to another cloud keeps its lease where it was granted (so the per-cloud limits are a cap on what runs
were admitted to each cloud, not on where failover took them); the overall limit always holds.

Limits come from ``GPUFLOW_GPU_LIMITS`` (e.g. ``total=16,aws=8,gcp=8``; unset: no admission, the slots alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gpuflow.core.clouds import CLOUD_TRAITS
from gpuflow.core.errors import GpuflowError

LIMITS_ENV = "GPUFLOW_GPU_LIMITS"
TOTAL = "total"


class AdmissionError(GpuflowError, ValueError):
    """The limits cannot be read, or a run asks for more than they could ever grant."""


@dataclass(frozen=True, slots=True)
class GpuLimits:
    """At most ``total`` GPUs held by all runs, and ``per_cloud[c]`` by runs admitted to cloud ``c``."""

    total: int | None = None
    per_cloud: Mapping[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.total is not None or bool(self.per_cloud)

    @classmethod
    def parse(cls, text: str) -> GpuLimits:
        """``total=16,aws=8``: whole numbers of GPUs; an empty text is no limit."""
        total: int | None = None
        per_cloud: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = (piece.strip() for piece in item.partition("="))
            if name != TOTAL and name not in CLOUD_TRAITS:
                raise AdmissionError(
                    f"{LIMITS_ENV}={text!r}: {name!r} is neither {TOTAL!r} nor a cloud ({', '.join(CLOUD_TRAITS)}); "
                    f"write e.g. {TOTAL}=16,aws=8"
                )
            if not value.isdigit() or int(value) < 1:
                raise AdmissionError(
                    f"{LIMITS_ENV}={text!r}: {name}={value!r} is not a whole number of GPUs of at least 1; "
                    f"write e.g. {name}=8, or leave {name} out for no limit"
                )
            if name == TOTAL:
                total = int(value)
            else:
                per_cloud[name] = int(value)
        return cls(total, per_cloud)

    def check_fits(self, cloud: str, gpus: int) -> None:
        """A run that needs more than a limit allows would wait forever: refuse it before anything is bought."""
        for name, limit in ((TOTAL, self.total), (cloud, self.per_cloud.get(cloud))):
            if limit is not None and gpus > limit:
                raise AdmissionError(
                    f"the job needs {gpus} GPUs but {LIMITS_ENV} allows {name}={limit}: it could never be admitted. "
                    f"Fix: ask for fewer GPUs (count x nodes), plan it on another cloud, or raise {name} in "
                    f"{LIMITS_ENV}"
                )


@dataclass(frozen=True, slots=True)
class Lease:
    """One run's claim on GPUs; ``granted`` once admitted. Released leases are not leases any more."""

    run_key: str
    cloud: str
    gpus: int
    requested_at: datetime
    granted: bool = False


def admitted(leases: Sequence[Lease], limits: GpuLimits) -> list[str]:
    """The waiting leases to grant now, in arrival order: each one that fits beside those already held, until the
    first that does not (it, and everyone after it, waits)."""
    held_total = sum(lease.gpus for lease in leases if lease.granted)
    held: dict[str, int] = {}
    for lease in leases:
        if lease.granted:
            held[lease.cloud] = held.get(lease.cloud, 0) + lease.gpus
    grants = []
    for lease in waiting(leases):
        cloud_limit = limits.per_cloud.get(lease.cloud)
        if limits.total is not None and held_total + lease.gpus > limits.total:
            break
        if cloud_limit is not None and held.get(lease.cloud, 0) + lease.gpus > cloud_limit:
            break
        grants.append(lease.run_key)
        held_total += lease.gpus
        held[lease.cloud] = held.get(lease.cloud, 0) + lease.gpus
    return grants


def waiting(leases: Sequence[Lease]) -> list[Lease]:
    """The leases not yet granted, first come first."""
    return sorted(
        (lease for lease in leases if not lease.granted), key=lambda lease: (lease.requested_at, lease.run_key)
    )


def place(leases: Sequence[Lease], run_key: str) -> int:
    """A waiting run's place in the queue (1: next), or 0 when it is not waiting."""
    for number, lease in enumerate(waiting(leases), start=1):
        if lease.run_key == run_key:
            return number
    return 0


def releasable(open_runs: Mapping[str, str], runs_with_pools: set[str], *, complete_listing: bool) -> list[str]:
    """The janitor's share: leases (run key -> the run's state) of runs that ended, or that Airflow does not know,
    and hold no pool any more. Only from a complete listing (every cluster listed, no pool still deleting): a pool
    that may still exist keeps its run's lease."""
    if not complete_listing:
        return []
    return sorted(key for key, state in open_runs.items() if state in ENDED_OR_UNKNOWN and key not in runs_with_pools)


ENDED_OR_UNKNOWN = frozenset({"success", "failed", "unknown"})
