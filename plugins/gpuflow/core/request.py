"""What a user asks for: the accelerator shape, where it may run, what it may cost.

``PlanRequest.from_mapping`` accepts the loose types of a DAG-run conf, a CLI or JSON and rejects every
bad value with a ``RequestError`` naming the field, the value and what is allowed, before anything runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from gpuflow.core.catalog import CapacityType, Offer
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.errors import RequestError

MAX_ACCELERATORS_PER_NODE = 16
MAX_NODES = 64
MAX_FALLBACKS = 32
MAX_HOURS = 24 * 365
# Spot nodes get preempted; the work since the last checkpoint and the time to get a new node are paid
# again. 25% extra GPU-hours is a conservative allowance for checkpointing every ~15 minutes under the
# interruption rates the clouds publish (mostly under 10% of nodes per hour). Override per request.
DEFAULT_SPOT_ALLOWANCE = 0.25
_REGION_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]+$")
_E = TypeVar("_E", bound=StrEnum)


class CapacityPreference(StrEnum):
    """Which capacity types the request accepts, in the order they should be tried."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"
    SPOT_THEN_ON_DEMAND = "spot-then-on-demand"

    @property
    def capacity_types(self) -> tuple[CapacityType, ...]:
        if self is CapacityPreference.SPOT_THEN_ON_DEMAND:
            return (CapacityType.SPOT, CapacityType.ON_DEMAND)
        return (CapacityType(self.value),)


@dataclass(frozen=True, slots=True)
class Block:
    """Offers that must not be tried (e.g. after a stockout), as a wildcard record until ``expires_at``.

    A field left as None matches anything, so ``Block("gcp")`` blocks a whole cloud after a
    ``GPUS_ALL_REGIONS`` quota error, ``Block("aws", zone="use1-az4")`` one zone after a stockout, and
    ``Block("aws", region="us-east-1", quota_family="P", capacity_type=SPOT)`` what an exhausted quota counts.
    """

    cloud: str
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    capacity_type: CapacityType | None = None
    expires_at: datetime | None = None
    reason: str = ""
    quota_family: str | None = None  # ``CloudTraits.quota_family`` of the offers it covers

    def is_active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def matches(self, offer: Offer, capacity: CapacityType) -> bool:
        return self.covers(offer.cloud, offer.region, offer.zone, offer.instance_type, capacity, offer.accelerator)

    def covers(
        self,
        cloud: str,
        region: str,
        zone: str | None,
        instance_type: str,
        capacity: CapacityType,
        accelerator: str,
    ) -> bool:
        return (
            self.cloud == cloud
            and self.region in (None, region)
            and self.zone in (None, zone)
            and self.instance_type in (None, instance_type)
            and self.capacity_type in (None, capacity)
            and self.quota_family in (None, traits(cloud).quota_family(instance_type, accelerator))
        )

    @classmethod
    def parse(cls, value: str | Mapping[str, Any]) -> Block:
        """``"cloud[/region[/zone[/instance_type]]]"`` (``*`` for any part) or a mapping of the fields."""
        if isinstance(value, str):
            parts = [None if p in ("", "*") else p for p in value.strip().split("/")]
            if not parts or parts[0] is None or len(parts) > 4:
                raise RequestError("blocked", value, "use cloud[/region[/zone[/instance_type]]], e.g. gcp/us-east1")
            return cls._checked(dict(zip(("cloud", "region", "zone", "instance_type"), parts, strict=False)))
        if isinstance(value, Mapping):
            return cls._checked(dict(value))
        raise RequestError("blocked", value, "each entry is a 'cloud/region/zone/instance' string or a mapping")

    @classmethod
    def _checked(cls, data: dict[str, Any]) -> Block:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise RequestError("blocked", data, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        if data.get("cloud") not in CLOUDS:
            raise RequestError("blocked.cloud", data.get("cloud"), f"one of {', '.join(CLOUDS)}")
        capacity = data.get("capacity_type")
        if capacity is not None:
            data["capacity_type"] = _enum(CapacityType, "blocked.capacity_type", capacity)
        expires = data.get("expires_at")
        if isinstance(expires, str):
            try:
                data["expires_at"] = datetime.fromisoformat(expires)
            except ValueError:
                raise RequestError("blocked.expires_at", expires, "an ISO 8601 time with offset") from None
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, "")}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at.isoformat()
        if self.capacity_type is not None:
            out["capacity_type"] = self.capacity_type.value
        return out


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """A validated request for a GPU node pool. Construct with keywords or ``from_mapping``."""

    accelerator: str | None = None
    min_memory_gib: float | None = None
    count: int = 1
    nodes: int = 1
    capacity: CapacityPreference = CapacityPreference.ON_DEMAND
    clouds: tuple[str, ...] = CLOUDS
    regions: tuple[str, ...] = ("*",)
    max_hourly_usd: float | None = None
    budget_usd: float | None = None
    estimated_hours: float = 1.0
    deadline_hours: float | None = None  # hours from the run's start within which training must finish
    spot_allowance: float = DEFAULT_SPOT_ALLOWANCE
    max_fallbacks: int = 8
    blocked: tuple[Block, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.accelerator is None and self.min_memory_gib is None:
            raise RequestError("accelerator", None, "name an accelerator (e.g. H100) or give min_memory_gib")
        if self.accelerator is not None and not self.accelerator.strip():
            raise RequestError("accelerator", self.accelerator, "a non-empty accelerator name such as H100")
        _check_range("min_memory_gib", self.min_memory_gib, 1, 1024, optional=True)
        _check_int("count", self.count, 1, MAX_ACCELERATORS_PER_NODE)
        _check_int("nodes", self.nodes, 1, MAX_NODES)
        _check_int("max_fallbacks", self.max_fallbacks, 0, MAX_FALLBACKS)
        if not self.clouds or any(c not in CLOUDS for c in self.clouds):
            raise RequestError("clouds", list(self.clouds), f"a non-empty list drawn from {', '.join(CLOUDS)}")
        if not self.regions or any(not _REGION_PATTERN.match(r) for r in self.regions):
            raise RequestError(
                "regions",
                list(self.regions),
                "a non-empty list of region names or globs such as us-* or europe-west?",
            )
        _check_range("max_hourly_usd", self.max_hourly_usd, 0.01, 100_000, optional=True)
        _check_range("budget_usd", self.budget_usd, 0.01, 10_000_000, optional=True)
        _check_range("estimated_hours", self.estimated_hours, 0.01, MAX_HOURS)
        _check_deadline(self.deadline_hours, self.estimated_hours)
        _check_range("spot_allowance", self.spot_allowance, 0, 5)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PlanRequest:
        """Build from loose input (JSON, a DAG-run conf, CLI flags); ``None`` means "use the default"."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RequestError(unknown[0], data[unknown[0]], f"not a request field; the fields are {sorted(known)}")
        given = {k: v for k, v in data.items() if v is not None}
        kwargs: dict[str, Any] = {}
        for name, value in given.items():
            kwargs[name] = _COERCE.get(name, _identity)(name, value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["capacity"] = self.capacity.value
        out["clouds"] = list(self.clouds)
        out["regions"] = list(self.regions)
        out["blocked"] = [b.to_dict() for b in self.blocked]
        return out

    def allows_region(self, region: str) -> bool:
        return any(fnmatchcase(region, pattern) for pattern in self.regions)


def _identity(_name: str, value: Any) -> Any:
    return value


def _to_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RequestError(name, value, "a string")
    return value


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RequestError(name, value, "an integer")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise RequestError(name, value, "an integer")
    return value


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RequestError(name, value, "a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(name, value, "a number") from None
    if not math.isfinite(number):
        raise RequestError(name, value, "a finite number")
    return number


def _to_str_tuple(name: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not all(isinstance(i, str) for i in items):
        raise RequestError(name, value, "a list of strings (or one comma-separated string)")
    return tuple(i.strip().lower() for i in items if i.strip())


def _to_blocks(name: str, value: Any) -> tuple[Block, ...]:
    items = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(items, Sequence):
        raise RequestError(name, value, "a list of blocks")
    return tuple(b if isinstance(b, Block) else Block.parse(b) for b in items)


def _to_capacity(name: str, value: Any) -> CapacityPreference:
    return _enum(CapacityPreference, name, value)


def _enum(enum: type[_E], name: str, value: Any) -> _E:
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        raise RequestError(name, value, f"one of {', '.join(e.value for e in enum)}") from None


_COERCE = {
    "accelerator": _to_str,
    "min_memory_gib": _to_float,
    "count": _to_int,
    "nodes": _to_int,
    "capacity": _to_capacity,
    "clouds": _to_str_tuple,
    "regions": _to_str_tuple,
    "max_hourly_usd": _to_float,
    "budget_usd": _to_float,
    "estimated_hours": _to_float,
    "deadline_hours": _to_float,
    "spot_allowance": _to_float,
    "max_fallbacks": _to_int,
    "blocked": _to_blocks,
}


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(name, value, f"an integer from {low} to {high}")


def _check_deadline(deadline_hours: float | None, estimated_hours: float) -> None:
    """A deadline must leave room for the work it bounds; how much more spot needs is the planner's call."""
    _check_range("deadline_hours", deadline_hours, 0.01, MAX_HOURS, optional=True)
    if deadline_hours is not None and deadline_hours <= estimated_hours:
        raise RequestError(
            "deadline_hours",
            deadline_hours,
            f"more than estimated_hours={estimated_hours:g}, the work that must fit before it (with time to get a "
            "node pool); set a later deadline, a smaller estimate, or no deadline",
        )


def _check_range(name: str, value: float | None, low: float, high: float, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(name, value, f"a number from {low:g} to {high:g}")
