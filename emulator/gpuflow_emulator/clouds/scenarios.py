"""Scenario files: what the emulated clouds do to each node-pool request and API call, deterministically.

A scenario is data (see the README's scenario reference). Every decision here is a pure function of the
scenario, the request and the pools alive at that moment; "random" draws hash the seed with the pool or
call they concern, so the same sequence of requests meets the same failures however calls interleave.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpuflow_emulator.clouds import traces
from gpuflow_emulator.clouds.traces import SpotTrace
from gpuflow_emulator.config import project_dir

SYNC, ASYNC = "sync", "async"
CAPACITY, QUOTA, THROTTLED, SERVER = "CAPACITY", "QUOTA", "THROTTLED", "SERVER"
BUSY = "BUSY"  # the cluster is busy with another operation: "please wait and try again"


@dataclass(frozen=True)
class Target:
    """What a pool rule can match on: where a pool goes and what it is made of."""

    cloud: str
    region: str
    zones: tuple[str, ...]
    instance_type: str
    spot: bool
    pool: str
    nodes: int = 0
    accelerators: int = 0


@dataclass(frozen=True)
class Fault:
    """A failure to inject: `kind` (CAPACITY, QUOTA, THROTTLED, SERVER), on the call (sync) or after it."""

    kind: str
    when: str = SYNC
    code: str | None = None
    message: str | None = None
    status: str | None = None
    http_status: int | None = None
    metric: str | None = None


@dataclass(frozen=True)
class Decision:
    """How one create request goes: an optional fault, then timings in real (already scaled) seconds."""

    fault: Fault | None
    provisioning_seconds: float
    deleting_seconds: float
    never_ready: bool
    preempt_after_seconds: float | None
    preemptions: int = 1  # how many times `preempt_after_seconds` preempts the pool's nodes


def _matches(match: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    """Every key of `match` holds; strings are globs, lists are alternatives, `zone` matches any zone."""
    for key, wanted in match.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        values = facts.get("zones", ()) if key == "zone" else (facts.get(key),)
        if not any(_equal(value, option) for value in values for option in options):
            return False
    return True


def _equal(value: Any, option: Any) -> bool:
    if isinstance(option, str) and isinstance(value, str):
        return fnmatch.fnmatchcase(value, option)
    return bool(value == option)


def _facts(target: Target) -> dict[str, Any]:
    return {
        "cloud": target.cloud,
        "region": target.region,
        "zones": target.zones,
        "instance_type": target.instance_type,
        "spot": target.spot,
        "pool": target.pool,
    }


def draw(seed: int, *key: object) -> float:
    """A number in [0, 1) fixed by the seed and the key (a pool or a call), independent of call order."""
    digest = hashlib.sha256(":".join(map(str, (seed, *key))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Rule:
    match: dict[str, Any]
    knobs: dict[str, Any]


@dataclass(frozen=True)
class ApiRule:
    """Throttling or server errors on the calls a rule matches: listed call numbers, every Nth, or at random."""

    match: dict[str, Any]
    kind: str
    calls: frozenset[int] = frozenset()
    every: int = 0
    probability: float = 0.0
    code: str | None = None
    http_status: int | None = None
    message: str | None = None  # the error text; ``{cluster}`` and other path fields are filled in

    def fires(self, seed: int, cloud: str, number: int) -> bool:
        return (
            number in self.calls
            or (self.every > 0 and number % self.every == 0)
            or draw(seed, "api", cloud, sorted(self.match.items()), number) < self.probability
        )


@dataclass(frozen=True)
class Scenario:
    seed: int = 0
    time_scale: float = 1.0
    rules: tuple[Rule, ...] = ()
    api: tuple[ApiRule, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)

    def seconds(self, cloud_seconds: float) -> float:
        """Real seconds for a duration the scenario states in cloud seconds."""
        return cloud_seconds / self.time_scale

    def knobs(self, target: Target) -> dict[str, tuple[Any, Rule | None]]:
        """Each knob's value for this target, with the rule that set it: later matching rules win."""
        chosen: dict[str, tuple[Any, Rule | None]] = {key: (value, None) for key, value in self.defaults.items()}
        facts = _facts(target)
        for rule in self.rules:
            if _matches(rule.match, facts):
                chosen.update({key: (value, rule) for key, value in rule.knobs.items()})
        return chosen

    def decide(self, target: Target, live: Iterable[Target], elapsed: float = 0.0) -> Decision:
        """The fate of a create request for `target`, given the pools (`live`) that hold capacity now and the real
        seconds `elapsed` since the emulator started (where spot traces stand)."""
        knobs = self.knobs(target)
        live = list(live)
        fault = (
            self._quota_fault(target, knobs.get("quota"), live)
            or self._capacity_fault(target, knobs.get("capacity"), live)
            or self._trace_fault(target, knobs.get("spot_trace"), live, elapsed)
        )
        preempt = knobs.get("preempt_after_seconds", (None, None))[0]
        return Decision(
            fault=fault,
            provisioning_seconds=self.seconds(float(knobs.get("provisioning_seconds", (30, None))[0])),
            deleting_seconds=self.seconds(float(knobs.get("deleting_seconds", (10, None))[0])),
            never_ready=bool(knobs.get("never_ready", (False, None))[0]),
            preempt_after_seconds=self.seconds(float(preempt)) if preempt is not None and target.spot else None,
            preemptions=int(knobs.get("preemptions", (1, None))[0]),
        )

    def spot_traces(self) -> list[tuple[Rule | None, SpotTrace]]:
        """Every spot trace with the rule whose pools it limits (None: a default, limiting every spot pool)."""
        scoped: list[tuple[Rule | None, dict[str, Any]]] = [(None, self.defaults)]
        scoped += [(rule, rule.knobs) for rule in self.rules]
        return [(rule, knobs["spot_trace"]) for rule, knobs in scoped if "spot_trace" in knobs]

    @staticmethod
    def in_scope(rule: Rule | None, target: Target) -> bool:
        """Whether a spot trace set by `rule` limits the pool `target`: spot pools the rule matches."""
        return target.spot and (rule is None or _matches(rule.match, _facts(target)))

    def _quota_fault(self, target: Target, knob: tuple[Any, Rule | None] | None, live: list[Target]) -> Fault | None:
        if knob is None:
            return None
        spec, rule = knob
        used = sum(t.accelerators for t in _in_scope(rule, live))
        if used + target.accelerators <= int(spec.get("accelerators", 0)):
            return None
        return _fault(QUOTA, spec)

    def _capacity_fault(self, target: Target, knob: tuple[Any, Rule | None] | None, live: list[Target]) -> Fault | None:
        if knob is None:
            return None
        spec, rule = knob
        if "nodes" in spec:
            used = sum(t.nodes for t in _in_scope(rule, live))
            if used + target.nodes > int(spec["nodes"]):
                return _fault(CAPACITY, spec)
        if draw(self.seed, "capacity", target.cloud, target.region, target.pool) < float(spec.get("probability", 0.0)):
            return _fault(CAPACITY, spec)
        return None

    def _trace_fault(
        self, target: Target, knob: tuple[Any, Rule | None] | None, live: list[Target], elapsed: float
    ) -> Fault | None:
        """A spot create beyond what the trace allows now fails as the cloud's capacity stockout."""
        if knob is None or not target.spot:
            return None
        trace, rule = knob
        used = sum(t.nodes for t in live if self.in_scope(rule, t))
        return Fault(CAPACITY) if used + target.nodes > trace.value(elapsed) else None

    def api_fault(self, cloud: str, operation: str, history: Iterable[str]) -> Fault | None:
        """The fault (if any) for a call to `operation` after the cloud's earlier calls `history`.

        A rule counts only the calls it matches, so `calls: [2]` on CreateNodePool is the second create.
        """
        facts = {"cloud": cloud, "operation": operation}
        earlier = list(history)
        for rule in self.api:
            if _matches(rule.match, facts):
                number = 1 + sum(_matches(rule.match, {"cloud": cloud, "operation": op}) for op in earlier)
                if rule.fires(self.seed, cloud, number):
                    return Fault(rule.kind, code=rule.code, http_status=rule.http_status, message=rule.message)
        return None


def _in_scope(rule: Rule | None, live: list[Target]) -> list[Target]:
    """Pools counted against a limit: those the limit's own rule matches (all of them for a default)."""
    return [t for t in live if rule is None or _matches(rule.match, _facts(t))]


def _fault(kind: str, spec: Mapping[str, Any]) -> Fault:
    return Fault(
        kind,
        when=spec.get("when", SYNC),
        code=spec.get("code"),
        message=spec.get("message"),
        status=spec.get("status"),
        metric=spec.get("metric"),
    )


def _api_rule(raw: Mapping[str, Any]) -> ApiRule:
    kind = {"throttle": THROTTLED, "server_error": SERVER, "busy": BUSY}[raw["kind"]]
    return ApiRule(
        match=dict(raw.get("match") or {}),
        kind=kind,
        calls=frozenset(int(n) for n in raw.get("calls") or ()),
        every=int(raw.get("every", 0)),
        probability=float(raw.get("probability", 0.0)),
        code=raw.get("code"),
        http_status=raw.get("http_status"),
        message=raw.get("message"),
    )


POOL_KNOBS = frozenset(
    {
        "provisioning_seconds",
        "deleting_seconds",
        "capacity",
        "quota",
        "never_ready",
        "preempt_after_seconds",
        "preemptions",
        "spot_trace",
    }
)


def parse(raw: Mapping[str, Any], root: Path | None = None) -> Scenario:
    """Build a scenario from parsed YAML; unknown knobs are an error, not a silent no-op, and so is a spot trace
    file that is missing or malformed (relative trace paths are relative to `root`, the project checkout)."""
    time_scale = float(raw.get("time_scale", 1.0))

    def knobs(entry: Mapping[str, Any], what: str) -> dict[str, Any]:
        found = {key: value for key, value in entry.items() if key != "match"}
        if unknown := set(found) - POOL_KNOBS:
            raise ValueError(f"unknown scenario {what} {sorted(unknown)}; known: {sorted(POOL_KNOBS)}")
        if "spot_trace" in found:
            found["spot_trace"] = traces.load(found["spot_trace"], time_scale, root or project_dir())
        return found

    rules = [Rule(dict(entry.get("match") or {}), knobs(entry, "knobs")) for entry in raw.get("rules") or ()]
    return Scenario(
        seed=int(raw.get("seed", 0)),
        time_scale=time_scale,
        rules=tuple(rules),
        api=tuple(_api_rule(entry) for entry in raw.get("api") or ()),
        defaults=knobs(raw.get("defaults") or {}, "defaults"),
    )


def load(path: Path | None) -> Scenario:
    """The scenario in `path`, or one where everything is available (no file)."""
    return parse(yaml.safe_load(path.read_text()) or {}) if path else Scenario()
