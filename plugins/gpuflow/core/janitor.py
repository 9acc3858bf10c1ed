"""What the janitor deletes among the resources labelled as gpuflow's, and why: a pure function of what it
found, what is known of the runs that own them, and the time.

The rules, for each run (the resources sharing one ``gpuflow.io/run`` are judged together, so an endpoint is
never half deleted and a run with a future expiry is kept whole):
0. Before rules 2-6, a named endpoint (``gpuflow.io/endpoint``): the run whose revision its front Service selects
   is kept, whatever its state (deleting one is ``gpu_endpoint_delete``'s job). Another revision of it is a
   retired one its promotion failed to delete: deleted once the promoting run has ended (while it runs, the old
   revision may still be draining), kept otherwise, and kept when the endpoint's front Service is not seen.
1. Without ``gpuflow.io/managed=true`` a resource is not ours: it is never judged, listed or touched.
2. The run's latest ``gpuflow.io/expires-at`` is in the future: keep (the user asked to keep the endpoint).
3. It is in the past: delete (the keep-time is over, whatever the run's state).
4. The run ended (success or failed) and keeps nothing: delete (its teardown did not finish the job).
5. The run is queued or running: keep (it is using them, or its teardown is about to run).
6. Airflow does not know the run (deleted from the metadata DB, registered in another state database, or
   a label no run registered): delete once gpuflow has known the label longer than the grace period
   (default 6 h), else keep. Known since: the run's registration before its first cloud call, or the
   janitor's first sighting of the label. The grace means a resource whose owner the janitor cannot see is
   never deleted on first sight, yet no leak lives much longer than the grace.
7. A managed resource without a run label cannot be attributed: it is deleted only once its own expiry
   has passed, and kept otherwise.

"Saved", in the summary, is said two ways, both lower bounds. ``gpus_released`` and ``usd_per_hour_stopped``
(the price catalog's rate for the pool's machine and capacity in its region, cheapest zone) are what each
further hour would have burnt. ``overdue_gpu_hours`` is what the deleted pools burnt after they became due,
counted only where that moment is known: an expiry, or the end of the grace for an unknown run. A run's end
time is not known here (Airflow tells tasks a run's state, not when it ended), so pools of ended runs add
only to the first figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gpuflow.core import naming
from gpuflow.core.catalog import CapacityType, Offer
from gpuflow.core.settings import DEFAULT_JANITOR_GRACE_HOURS

DEFAULT_GRACE = timedelta(hours=DEFAULT_JANITOR_GRACE_HOURS)
NODE_POOL = "NodePool"


class RunState(StrEnum):
    """A run's state as Airflow reports it (``DagRunState`` values), plus not known to Airflow at all."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UNKNOWN = "unknown"


ENDED = frozenset({RunState.SUCCESS, RunState.FAILED})


@dataclass(frozen=True, slots=True)
class Found:
    """One labelled resource: a node pool (with its GPUs and, when the catalog knows it, its price) or a
    Kubernetes object of a run's endpoint or training."""

    kind: str  # NODE_POOL, or a Kubernetes kind (Deployment, Service, Secret, Pod)
    cloud: str
    cluster: str
    name: str
    labels: Mapping[str, str]
    gpus: int = 0
    hourly_usd: float | None = None

    @property
    def managed(self) -> bool:
        return self.labels.get(naming.MANAGED_LABEL) == "true"

    @property
    def run_key(self) -> str | None:
        return self.labels.get(naming.RUN_LABEL)

    @property
    def where(self) -> str:
        return f"{self.cloud}/{self.cluster}"


@dataclass(frozen=True, slots=True)
class RunInfo:
    state: RunState
    known_since: datetime | None = None  # when gpuflow first knew the run's label


@dataclass(frozen=True, slots=True)
class Verdict:
    found: Found
    delete: bool
    reason: str
    due_since: datetime | None = None  # when it became due for deletion, where that is known


@dataclass(frozen=True, slots=True)
class Summary:
    reclaimed: int
    kept: int
    gpus_released: int
    usd_per_hour_stopped: float
    unpriced_pools: int
    overdue_gpu_hours: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "reclaimed": self.reclaimed,
            "kept": self.kept,
            "gpus_released": self.gpus_released,
            "usd_per_hour_stopped": round(self.usd_per_hour_stopped, 4),
            "unpriced_pools": self.unpriced_pools,
            "overdue_gpu_hours": round(self.overdue_gpu_hours, 4),
        }


def judge(
    found: Iterable[Found], runs: Mapping[str, RunInfo], now: datetime, grace: timedelta = DEFAULT_GRACE
) -> list[Verdict]:
    """A verdict for every managed resource (others are dropped); ``runs`` lacks the runs nobody knows."""
    verdicts: list[Verdict] = []
    by_run: dict[str, list[Found]] = defaultdict(list)
    for item in found:
        if not item.managed:
            continue
        if item.run_key is None:
            verdicts.append(_unattributed(item, now))
        else:
            by_run[item.run_key].append(item)
    live = _live_revisions(found)
    for key, members in by_run.items():
        named = _named_endpoint_verdict(key, members, live, runs)
        delete, reason, due = named or _run_verdict(members, runs.get(key, RunInfo(RunState.UNKNOWN)), now, grace)
        verdicts += [Verdict(item, delete, reason, due) for item in members]
    return verdicts


def _live_revisions(found: Iterable[Found]) -> dict[str, str]:
    """Each named endpoint's front Service (named as the endpoint, carrying its label): the run it serves."""
    return {
        item.name: item.run_key
        for item in found
        if item.kind == "Service" and item.run_key and item.labels.get(naming.ENDPOINT_LABEL) == item.name
    }


def _named_endpoint_verdict(
    key: str, members: Sequence[Found], live: Mapping[str, str], runs: Mapping[str, RunInfo]
) -> tuple[bool, str, None] | None:
    """Rule 0, for a run whose resources carry a named endpoint's label; None for any other run."""
    endpoint = next((m.labels[naming.ENDPOINT_LABEL] for m in members if naming.ENDPOINT_LABEL in m.labels), None)
    if endpoint is None:
        return None
    serving = live.get(endpoint)
    if serving == key:
        return False, f"live revision of endpoint {endpoint}", None
    if serving is None:
        return False, f"endpoint {endpoint}: its front Service is not seen (delete it with gpu_endpoint_delete)", None
    if runs.get(serving, RunInfo(RunState.UNKNOWN)).state in ENDED:
        return True, f"retired revision of endpoint {endpoint} (run {serving} serves it)", None
    return False, f"endpoint {endpoint} is being promoted to run {serving}", None


def _run_verdict(
    members: Sequence[Found], run: RunInfo, now: datetime, grace: timedelta
) -> tuple[bool, str, datetime | None]:
    expiries = [moment for item in members if (moment := naming.expires_at(item.labels)) is not None]
    if expiries:
        latest = max(expiries)
        if latest > now:
            return False, f"kept until {_utc(latest)}", None
        return True, f"keep-time ended {_utc(latest)}", latest
    if run.state in ENDED:
        return True, f"run {run.state.value}", None
    if run.state is not RunState.UNKNOWN:
        return False, f"run {run.state.value}", None
    deadline = (run.known_since or now) + grace
    if now >= deadline:
        return True, f"run unknown to Airflow for over {_hours(grace)} h", deadline
    return False, f"run unknown to Airflow; due {_utc(deadline)} if still unknown", None


def _unattributed(item: Found, now: datetime) -> Verdict:
    expiry = naming.expires_at(item.labels)
    if expiry is not None and expiry <= now:
        return Verdict(item, True, f"keep-time ended {_utc(expiry)}", expiry)
    return Verdict(item, False, "no run label: not attributable")


def ledger_closures(
    open_pools: Iterable[str], verdicts: Iterable[Verdict], deleted: Iterable[str], listed: Mapping[str, frozenset[str]]
) -> dict[str, str]:
    """Why each open cost-ledger entry's pool (``cloud/cluster/name``) is closed now; the others stay open.

    A pool this sweep deleted closes with its verdict's reason. A pool missing from a clean listing of its
    cluster (deleting ones are listed) went since the last sweep: closing it now over-counts by at most one
    sweep interval, never under-counts. ``listed``: ``cloud/cluster`` -> pool paths, for the clusters listed.
    """
    reasons = {f"{v.found.where}/{v.found.name}": v.reason for v in verdicts if v.found.kind == NODE_POOL}
    deleted = frozenset(deleted)
    closures = {}
    for pool in open_pools:
        cluster = pool.rsplit("/", 1)[0]
        if pool in deleted:
            closures[pool] = f"janitor: {reasons.get(pool, 'reclaimed')}"
        elif cluster in listed and pool not in listed[cluster]:
            closures[pool] = "janitor: found gone (closed at the first sweep that saw it gone)"
    return closures


def summarize(verdicts: Iterable[Verdict], now: datetime) -> Summary:
    """What deleting the ``delete`` verdicts reclaims (see the module docstring for what "saved" means)."""
    verdicts = list(verdicts)
    pools = [v for v in verdicts if v.delete and v.found.kind == NODE_POOL]
    return Summary(
        reclaimed=sum(v.delete for v in verdicts),
        kept=sum(not v.delete for v in verdicts),
        gpus_released=sum(v.found.gpus for v in pools),
        usd_per_hour_stopped=sum(v.found.hourly_usd or 0.0 for v in pools),
        unpriced_pools=sum(v.found.hourly_usd is None for v in pools),
        overdue_gpu_hours=sum(
            v.found.gpus * max(0.0, (now - v.due_since).total_seconds()) / 3600 for v in pools if v.due_since
        ),
    )


def machine_rate(
    offers: Iterable[Offer], cloud: str, region: str, instance_type: str, capacity: CapacityType
) -> tuple[int, float | None]:
    """(accelerators per node, USD per node-hour) of a machine from the catalog: 0 and None when the
    catalog does not list it, None for the price when it has none for that region and capacity."""
    machines = [o for o in offers if (o.cloud, o.instance_type) == (cloud, instance_type)]
    if not machines:
        return 0, None
    prices = [p for o in machines if o.region == region and (p := o.price(capacity)) is not None]
    return machines[0].accelerator_count, min(prices) if prices else None


def table(verdicts: Iterable[Verdict]) -> str:
    """One line per resource, deleted ones first: action, kind, where, name, GPUs, reason."""
    rows = [
        ("deleted" if v.delete else "kept", v.found.kind, v.found.where, v.found.name, str(v.found.gpus), v.reason)
        for v in sorted(verdicts, key=lambda v: (not v.delete, v.found.where, v.found.kind, v.found.name))
    ]
    if not rows:
        return "nothing labelled as gpuflow's was found"
    header = ("action", "kind", "where", "name", "GPUs", "reason")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in [header, *rows]
    )


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}"
