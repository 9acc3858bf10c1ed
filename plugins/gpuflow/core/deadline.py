"""Spot or on-demand under a deadline: the pure policy the planner asks before any step and a run's supervisor asks
after a spot preemption.

Our own implementation of part of Uniform Progress, the policy of *Can't Be Late: Optimizing Spot Instance Savings
under Deadlines* (Zhanghao Wu, Wei-Lin Chiang, Ziming Mao, Zongheng Yang, Eric Friedman, Scott Shenker, Ion Stoica;
NSDI 2024; https://www.usenix.org/conference/nsdi24/presentation/wu-zhanghao).

Kept: its **safety net**. Spot only while the slack (time to the deadline minus the work left) exceeds two costs: the
start being made now (a new pool, spot or not: ``provision_s + restart_s``) and one more preemption after it (the
redone work and a new on-demand pool: ``lost_work_s + provision_s + restart_s``). The paper's safety net keeps twice
the restart overhead in hand, one for each of those two starts; ours prices each with this run's overheads, the redone
work with the job's own checkpoint interval once the trainer's progress file gives it (``lost_work_for``). Then even
a spot preemption at the worst moment leaves on-demand time to finish. Slack never grows (a second of wall time makes
at most a second of progress), so with the same overheads a job the net has caught stays on on-demand to the end.

Dropped, measured on the cost benchmark (docs/cost-benchmark.md; seed 17, 1,000 jobs):

- **The uniform-progress line** (on-demand whenever the job is behind the straight line from nothing done at the
  run's start to all done at the deadline) and with it the **hysteresis** that makes it pay in the paper (back to
  spot once well ahead of the line). A run preempted early is behind the line by its own start-up and lost work,
  however loose its deadline; and here the line's on-demand lasted to the end of the job, since the supervisor is
  asked only after a preemption and an on-demand pool is not preempted. The line with a 15-minute lost-work
  allowance cost 2.59 USD per job, 59.7 % below naive and 1.36x the hindsight optimum, with 121 jobs kept on
  on-demand by it (32 % of the spend) and 3 deadlines missed; the safety net alone, priced with each job's
  checkpoint interval, costs 2.13 USD, 66.8 % below naive, 1.12x the optimum, none missed. The paper's full policy
  (line and hysteresis) in one region: 3.19 USD. Hysteresis would need the supervisor to interrupt a healthy
  on-demand run at a checkpoint; without the line there is nothing for it to undo.
- **Idling while no spot is offered**: the provisioner moves to the next spot offer (another zone, region or cloud)
  instead of waiting for one.

Before the first checkpoint (at plan time, or a run lost before it) the interval is not known: ``PLAN_LOST_WORK_S``
stands in for it, an hour. Knowing each job's own interval from the start would save 0.06 USD per job more on the
benchmark (2.07 USD, 1.09x); at 15 minutes, 3 jobs that checkpoint every 30 or 60 minutes start on spot and are late.

Times are seconds since the run started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import traits

# Stand-ins for what a run later measures or reports (the supervisor passes its own figures):
# pulling a multi-GB CUDA training image onto a fresh node and loading the checkpoint takes minutes;
PLAN_RESTART_S = 5 * 60
# the trainer checkpoints on SIGTERM, so a noticed preemption loses little, but a node lost without notice redoes up
# to one checkpoint interval. Until the trainer's progress file gives the job's own interval (``lost_work_for``): an
# hour, the longest interval of the cost benchmark's job mix. Less is not safe: priced at 15 minutes, 3 of its 1,000
# jobs that checkpoint every 30 or 60 minutes started on spot, lost 23-41 minutes of work and missed their deadline.
PLAN_LOST_WORK_S = 60 * 60


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


def lost_work_for(checkpoint_every: int | None, step_seconds: float | None) -> float:
    """The work a preemption without notice throws away: one checkpoint interval, ``checkpoint_every`` steps of
    ``step_seconds`` each, as the trainer's progress file gives them; ``PLAN_LOST_WORK_S`` while it does not (no
    file before the first checkpoint, a file from an older trainer, no step timed yet)."""
    if not checkpoint_every or checkpoint_every < 1 or not step_seconds or not _positive(step_seconds):
        return PLAN_LOST_WORK_S
    return checkpoint_every * step_seconds


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
    return _decide(now_s, deadline_s, progress.remaining_s, overheads)


def initial_capacity(*, deadline_s: float, work_s: float, overheads: Overheads) -> DeadlineDecision:
    """The same decision at plan time, before any step: ``work_s`` is the whole job (``estimated_hours``)."""
    _check_times(0.0, deadline_s)
    _require(_positive(work_s), "work_s", work_s, "a positive number of seconds")
    return _decide(0.0, deadline_s, work_s, overheads)


def _decide(now_s: float, deadline_s: float, remaining_s: float, overheads: Overheads) -> DeadlineDecision:
    """The safety net alone: spot while the slack absorbs this start and one more preemption, on-demand otherwise."""
    slack_s = deadline_s - now_s - remaining_s
    caught = _safety_net(slack_s, deadline_s - now_s, remaining_s, overheads)
    if caught is not None:
        return caught
    return DeadlineDecision(
        CapacityType.SPOT,
        slack_s,
        f"Spot: {_span(slack_s)} of slack absorbs this start ({_span(overheads.startup_s)}) and one more preemption "
        f"({_span(overheads.preemption_s)}).",
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
