"""Spot or on-demand under a deadline: the pure policy a run's supervisor asks after a spot preemption.

Our own implementation of the idea behind Uniform Progress, the policy of *Can't Be Late: Optimizing Spot Instance
Savings under Deadlines* (Zhanghao Wu, Wei-Lin Chiang, Ziming Mao, Zongheng Yang, Eric Friedman, Scott Shenker,
Ion Stoica; NSDI 2024; https://www.usenix.org/conference/nsdi24/presentation/wu-zhanghao). Two of its rules:

- **Uniform progress.** A job should be at least as far along as the straight line from nothing done at the start
  to all done at the deadline. A job below that line has lost time to preemptions faster than the deadline allows,
  so it takes on-demand; a job on or above it takes spot.
- **Safety net.** Spot only while the slack (time to the deadline minus the work left) exceeds two costs: the start
  being made now (a new pool, spot or not: ``provision_s + restart_s``) and one more preemption after it (the redone
  work and a new on-demand pool: ``lost_work_s + provision_s + restart_s``). The paper's safety net keeps twice the
  restart overhead in hand, one for each of those two starts; ours prices each with this run's overheads. Then even
  a spot preemption at the worst moment leaves on-demand time to finish. Slack never grows (a second of wall time
  makes at most a second of progress), so a job the net has caught stays on on-demand to the end.

Not kept: the paper's hysteresis (leaving on-demand once well ahead of the line) and its idling while no spot is
offered. The supervisor asks after a preemption, when a new pool is needed anyway, and on-demand is not preempted.

Times are seconds since the run started, so the line runs from (0, nothing done) to (``deadline_s``, all done).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import traits

# Plan-time stand-ins for what a run later measures (the supervisor passes its own figures):
# pulling a multi-GB CUDA training image onto a fresh node and loading the checkpoint takes minutes;
PLAN_RESTART_S = 5 * 60
# the trainer checkpoints on SIGTERM, so a noticed preemption loses little, but a node lost without notice redoes up
# to one checkpoint interval: 15 minutes, the interval the default spot allowance assumes (``core/request.py``).
PLAN_LOST_WORK_S = 15 * 60


@dataclass(frozen=True, slots=True)
class Progress:
    """How far training is, read from the trainer's progress file."""

    steps_done: int  # steps a restart keeps: the newest complete checkpoint's step (later steps are run again)
    total_steps: int
    step_seconds: float  # measured mean wall seconds per step

    def __post_init__(self) -> None:
        _require(self.total_steps >= 1, "progress.total_steps", self.total_steps, "at least 1")
        _require(
            0 <= self.steps_done <= self.total_steps,
            "progress.steps_done",
            self.steps_done,
            f"0 to total_steps ({self.total_steps})",
        )
        _require(_positive(self.step_seconds), "progress.step_seconds", self.step_seconds, "a positive number")

    @property
    def done_s(self) -> float:
        return self.steps_done * self.step_seconds

    @property
    def remaining_s(self) -> float:
        return (self.total_steps - self.steps_done) * self.step_seconds


def progress_from(
    steps_done: int | None, total_steps: int | None, step_seconds: float | None, *, estimated_s: float
) -> Progress:
    """The trainer's progress file as ``Progress``; without a usable one (none yet, or no step timed: an output from
    an older trainer), as if nothing were done of ``estimated_s`` seconds of work, which errs towards on-demand.
    A restart given fewer steps than were done counts as done."""
    if not total_steps or not step_seconds or step_seconds <= 0 or steps_done is None:
        return Progress(0, 1, estimated_s)
    return Progress(min(max(steps_done, 0), total_steps), total_steps, step_seconds)


@dataclass(frozen=True, slots=True)
class Overheads:
    """What one more preemption costs in wall time."""

    provision_s: float  # to get a new node pool ready (``CloudTraits.typical_provision_s`` until measured)
    restart_s: float  # pod start + model/checkpoint load before the first step
    lost_work_s: float  # work redone after a preemption (up to one checkpoint interval)

    def __post_init__(self) -> None:
        for name in ("provision_s", "restart_s", "lost_work_s"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"overheads.{name}", value, "a number of seconds >= 0")

    @property
    def startup_s(self) -> float:
        """Before the first step on a new pool, whatever its capacity type."""
        return self.provision_s + self.restart_s

    @property
    def preemption_s(self) -> float:
        """One more preemption: the redone work and a new pool."""
        return self.lost_work_s + self.startup_s

    @property
    def spot_margin_s(self) -> float:
        """The slack spot needs: this start and one more preemption after it (the module docstring says why)."""
        return self.startup_s + self.preemption_s


@dataclass(frozen=True, slots=True)
class DeadlineDecision:
    """The capacity to ask for next, the slack it was decided on and why, in one sentence for the log."""

    capacity: CapacityType
    slack_s: float  # time to the deadline minus the remaining work (negative: already late)
    reason: str
    on_time: bool = True  # False when even on-demand, started now, finishes after the deadline

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity.value,
            "slack_s": round(self.slack_s, 1),
            "reason": self.reason,
            "on_time": self.on_time,
        }


def overheads_for(cloud: str, *, restart_s: float = PLAN_RESTART_S, lost_work_s: float = PLAN_LOST_WORK_S) -> Overheads:
    """A preemption's cost on ``cloud``: its typical provisioning time, with the plan-time restart and lost work
    unless the caller measured them."""
    return Overheads(provision_s=traits(cloud).typical_provision_s, restart_s=restart_s, lost_work_s=lost_work_s)


def next_capacity(*, now_s: float, deadline_s: float, progress: Progress, overheads: Overheads) -> DeadlineDecision:
    """What to re-provision after a preemption at ``now_s`` (seconds since the run started)."""
    _check_times(now_s, deadline_s)
    if progress.steps_done == progress.total_steps:
        return DeadlineDecision(
            CapacityType.SPOT,
            deadline_s - now_s,
            f"Spot: all {progress.total_steps} steps are done, so no preemption can delay the job any more.",
        )
    return _decide(now_s, deadline_s, progress.done_s, progress.remaining_s, overheads)


def initial_capacity(*, deadline_s: float, work_s: float, overheads: Overheads) -> DeadlineDecision:
    """The same decision at plan time, before any step: ``work_s`` is the whole job (``estimated_hours``)."""
    _check_times(0.0, deadline_s)
    _require(_positive(work_s), "work_s", work_s, "a positive number of seconds")
    return _decide(0.0, deadline_s, 0.0, work_s, overheads)


def _decide(
    now_s: float, deadline_s: float, done_s: float, remaining_s: float, overheads: Overheads
) -> DeadlineDecision:
    """The safety net first (its reasons are the more urgent), then the uniform-progress line."""
    slack_s = deadline_s - now_s - remaining_s
    caught = _safety_net(slack_s, deadline_s - now_s, remaining_s, overheads)
    if caught is not None:
        return caught
    total_s = done_s + remaining_s
    line = now_s / deadline_s  # the share of the work the uniform-progress line expects done by now
    if done_s < line * total_s:
        return DeadlineDecision(
            CapacityType.ON_DEMAND,
            slack_s,
            f"On-demand: {done_s / total_s:.0%} done is behind the uniform-progress line at {line:.0%} "
            f"({_span(now_s)} of {_span(deadline_s)}); preemptions are costing more time than the deadline allows.",
        )
    ahead = f", and {done_s / total_s:.0%} done is on or above the uniform-progress line at {line:.0%}" if now_s else ""
    return DeadlineDecision(
        CapacityType.SPOT,
        slack_s,
        f"Spot: {_span(slack_s)} of slack absorbs this start ({_span(overheads.startup_s)}) and one more preemption "
        f"({_span(overheads.preemption_s)}){ahead}.",
    )


def _safety_net(
    slack_s: float, time_left_s: float, remaining_s: float, overheads: Overheads
) -> DeadlineDecision | None:
    """On-demand, and why, when the slack is too small for spot; None while spot can still afford a preemption."""
    if slack_s < 0:
        left = f"{_span(time_left_s)} to the deadline" if time_left_s > 0 else f"the deadline {_span(-time_left_s)} ago"
        reason = (
            f"Already late: {_span(remaining_s)} of work left and {left} ({_span(-slack_s)} short); on-demand "
            "finishes soonest."
        )
        return DeadlineDecision(CapacityType.ON_DEMAND, slack_s, reason, on_time=False)
    if slack_s < overheads.startup_s:
        reason = (
            f"Late whatever runs it: {_span(slack_s)} of slack is less than the {_span(overheads.startup_s)} a new "
            "pool takes to start; on-demand finishes soonest."
        )
        return DeadlineDecision(CapacityType.ON_DEMAND, slack_s, reason, on_time=False)
    if slack_s <= overheads.spot_margin_s:
        reason = (
            f"On-demand: {_span(slack_s)} of slack cannot absorb this start ({_span(overheads.startup_s)}) and one "
            f"more spot preemption ({_span(overheads.preemption_s)}) before the deadline."
        )
        return DeadlineDecision(CapacityType.ON_DEMAND, slack_s, reason)
    return None


def _span(seconds: float) -> str:
    """A duration as a person reads it in a log: seconds, minutes or hours."""
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _check_times(now_s: float, deadline_s: float) -> None:
    _require(math.isfinite(now_s) and now_s >= 0, "now_s", now_s, "seconds since the run started, >= 0")
    _require(_positive(deadline_s), "deadline_s", deadline_s, "seconds from the run's start, > 0")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _require(ok: bool, name: str, value: object, expected: str) -> None:
    """Reject what a progress file or a caller got wrong, naming the field, the value and what is accepted."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {expected}")
