"""The deadline policy on hand-built timelines: spot while the slack absorbs this start and one more preemption,
priced with the job's checkpoint interval, on-demand otherwise (wherever the job stands against the uniform-progress
line), and never back to spot as time runs out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuflow.core.catalog import CapacityType
from gpuflow.core.clouds import CLOUDS, traits
from gpuflow.core.deadline import (
    PLAN_LOST_WORK_S,
    PLAN_RESTART_S,
    DeadlineDecision,
    Overheads,
    Progress,
    initial_capacity,
    lost_work_for,
    next_capacity,
    overheads_for,
    progress_from,
)

SPOT, ON_DEMAND = CapacityType.SPOT, CapacityType.ON_DEMAND
# A new pool in 3 min, 5 min to the first step, 15 min of work redone: a start costs 8 min, a preemption 23 min.
OVERHEADS = Overheads(provision_s=180, restart_s=300, lost_work_s=900)
STARTUP_S, PREEMPTION_S, MARGIN_S = 480, 1380, 1860
HOUR = 3600.0


def job(steps_done: int) -> Progress:
    """A 10-hour job: 900 steps of 40 s."""
    return Progress(steps_done=steps_done, total_steps=900, step_seconds=40)


def decide(now_s: float, deadline_s: float, steps_done: int) -> DeadlineDecision:
    return next_capacity(now_s=now_s, deadline_s=deadline_s, progress=job(steps_done), overheads=OVERHEADS)


def test_the_margins_add_this_start_to_one_more_preemption() -> None:
    assert (OVERHEADS.startup_s, OVERHEADS.preemption_s, OVERHEADS.spot_margin_s) == (STARTUP_S, PREEMPTION_S, MARGIN_S)


def test_ample_slack_ahead_of_the_line_takes_spot() -> None:
    decision = decide(now_s=2 * HOUR, deadline_s=20 * HOUR, steps_done=150)  # 1.7 h done, 8.3 h left, 18 h to go
    assert decision.capacity is SPOT
    assert decision.slack_s == 18 * HOUR - 750 * 40
    assert decision.reason.startswith(
        "Spot: 9.7 h of slack absorbs this start (8 min) and one more preemption (23 min)"
    )


@pytest.mark.parametrize(
    ("slack_s", "capacity"),
    [
        (PREEMPTION_S - 1, ON_DEMAND),  # just below one preemption's cost
        (MARGIN_S - 1, ON_DEMAND),  # a preemption fits, but not together with the start being made now
        (MARGIN_S, ON_DEMAND),
        (MARGIN_S + 1, SPOT),
    ],
)
def test_spot_needs_slack_for_this_start_and_one_more_preemption(slack_s: float, capacity: CapacityType) -> None:
    """1 h in, 90 steps done, the deadline set to leave exactly ``slack_s``."""
    remaining_s = 810 * 40
    decision = decide(now_s=HOUR, deadline_s=HOUR + remaining_s + slack_s, steps_done=90)
    assert decision.capacity is capacity
    assert decision.slack_s == pytest.approx(slack_s)
    if capacity is ON_DEMAND:
        assert "cannot absorb this start (8 min) and one more spot preemption (23 min)" in decision.reason


def test_slack_below_a_pool_start_says_even_on_demand_is_late() -> None:
    decision = decide(now_s=HOUR, deadline_s=HOUR + 810 * 40 + 300, steps_done=90)
    assert decision.capacity is ON_DEMAND
    assert decision.reason == (
        "Late whatever runs it: 5 min of slack is less than the 8 min a new pool takes to start; on-demand finishes "
        "soonest."
    )


def test_already_late_takes_on_demand_and_says_by_how_much() -> None:
    decision = decide(now_s=8 * HOUR, deadline_s=10 * HOUR, steps_done=450)  # 5 h of work left, 2 h to go
    assert decision.capacity is ON_DEMAND
    assert decision.slack_s == -3 * HOUR
    assert decision.reason == (
        "Already late: 5.0 h of work left and 2.0 h to the deadline (3.0 h short); on-demand finishes soonest."
    )


def test_past_the_deadline_says_when_it_passed() -> None:
    decision = decide(now_s=11 * HOUR, deadline_s=10 * HOUR, steps_done=810)
    assert decision.capacity is ON_DEMAND
    assert "60 min of work left and the deadline 60 min ago (2.0 h short)" in decision.reason


@pytest.mark.parametrize("now_s", [5 * HOUR, 12 * HOUR])
def test_a_finished_job_has_nothing_left_to_risk(now_s: float) -> None:
    decision = decide(now_s=now_s, deadline_s=10 * HOUR, steps_done=900)
    assert decision.capacity is SPOT
    assert decision.slack_s == 10 * HOUR - now_s
    assert "all 900 steps are done" in decision.reason


def test_the_same_slack_takes_the_same_capacity_behind_the_uniform_progress_line_or_ahead_of_it() -> None:
    """Both have 7.8 h of slack before a 20 h deadline; the first lost it in its first 2.8 h, which put it behind the
    paper's line (6% done, the line at 14%). The line is not asked: that slack absorbs many more preemptions."""
    behind = decide(now_s=10_000, deadline_s=20 * HOUR, steps_done=50)
    ahead = decide(now_s=40_000, deadline_s=20 * HOUR, steps_done=800)  # 89% done, the line at 56%
    assert behind.slack_s == ahead.slack_s == 28_000
    assert (behind.capacity, ahead.capacity) == (SPOT, SPOT)
    assert behind.reason == "Spot: 7.8 h of slack absorbs this start (8 min) and one more preemption (23 min)."


@pytest.mark.parametrize("steps_done", [100, 880])
def test_a_job_waiting_for_a_pool_turns_to_on_demand_when_its_slack_reaches_the_margin(steps_done: int) -> None:
    """Progress held (the job waits for a new pool) while the clock runs: early or nearly done, the switch comes
    with the same slack, the margin."""
    for now_s in range(0, int(20 * HOUR), 60):
        decision = decide(now_s=now_s, deadline_s=20 * HOUR, steps_done=steps_done)
        if decision.capacity is ON_DEMAND:
            assert MARGIN_S - 60 < decision.slack_s <= MARGIN_S
            return
    raise AssertionError("never switched")


def test_one_more_preemption_redoes_one_checkpoint_interval_of_the_job() -> None:
    """The trainer's file gives the interval in steps and the step time: 50 steps of 12 s, 10 minutes of work."""
    assert lost_work_for(50, 12.0) == 600
    often = overheads_for("aws", lost_work_s=lost_work_for(50, 12.0))
    rarely = overheads_for("aws", lost_work_s=lost_work_for(300, 12.0))  # an hour
    # 40 min of slack after a preemption: enough when 10 min of work is at stake, not when an hour is
    work = Progress(steps_done=450, total_steps=900, step_seconds=40)
    decide_with = {
        name: next_capacity(now_s=6 * HOUR, deadline_s=6 * HOUR + 450 * 40 + 2400, progress=work, overheads=o)
        for name, o in (("often", often), ("rarely", rarely))
    }
    assert (decide_with["often"].capacity, decide_with["rarely"].capacity) == (SPOT, ON_DEMAND)


@pytest.mark.parametrize(
    ("checkpoint_every", "step_seconds"),
    [(None, 12.0), (50, None), (50, 0.0), (0, 12.0)],  # no file yet, an older trainer's, no step timed
)
def test_without_the_job_s_interval_a_preemption_redoes_the_plan_time_hour(
    checkpoint_every: int | None, step_seconds: float | None
) -> None:
    assert lost_work_for(checkpoint_every, step_seconds) == PLAN_LOST_WORK_S == HOUR


def test_once_the_safety_net_catches_a_job_on_demand_runs_it_to_the_end() -> None:
    """On on-demand the job makes a step every 40 s of wall time, so its slack stays where it was."""
    start_s, start_steps = 5 * HOUR, 400
    deadline_s = start_s + 500 * 40 + MARGIN_S
    for steps in range(0, 500, 25):
        decision = decide(now_s=start_s + steps * 40, deadline_s=deadline_s, steps_done=start_steps + steps)
        assert decision.capacity is ON_DEMAND, decision.reason


progress_st = st.integers(min_value=1, max_value=2_000).flatmap(
    lambda total: st.builds(
        Progress,
        steps_done=st.integers(min_value=0, max_value=total - 1),
        total_steps=st.just(total),
        step_seconds=st.floats(min_value=0.1, max_value=600),
    )
)
overheads_st = st.builds(
    Overheads,
    provision_s=st.floats(min_value=0, max_value=3_600),
    restart_s=st.floats(min_value=0, max_value=3_600),
    lost_work_s=st.floats(min_value=0, max_value=7_200),
)
seconds_st = st.floats(min_value=0, max_value=30 * 24 * HOUR)


@given(progress=progress_st, overheads=overheads_st, now_s=seconds_st, later_by=seconds_st, deadline_s=seconds_st)
def test_as_the_clock_runs_on_demand_never_turns_back_into_spot(
    progress: Progress, overheads: Overheads, now_s: float, later_by: float, deadline_s: float
) -> None:
    deadline_s = max(deadline_s, 1.0)
    first = next_capacity(now_s=now_s, deadline_s=deadline_s, progress=progress, overheads=overheads)
    later = next_capacity(now_s=now_s + later_by, deadline_s=deadline_s, progress=progress, overheads=overheads)
    assert later.slack_s <= first.slack_s
    if first.capacity is ON_DEMAND:
        assert later.capacity is ON_DEMAND


@given(progress=progress_st, overheads=overheads_st, now_s=seconds_st, deadline_s=seconds_st, sooner_by=seconds_st)
def test_an_earlier_deadline_never_turns_on_demand_into_spot(
    progress: Progress, overheads: Overheads, now_s: float, deadline_s: float, sooner_by: float
) -> None:
    deadline_s = now_s + sooner_by + max(deadline_s, 1.0)
    first = next_capacity(now_s=now_s, deadline_s=deadline_s, progress=progress, overheads=overheads)
    sooner = next_capacity(now_s=now_s, deadline_s=deadline_s - sooner_by, progress=progress, overheads=overheads)
    if first.capacity is ON_DEMAND:
        assert sooner.capacity is ON_DEMAND


def test_at_plan_time_a_loose_deadline_allows_spot_and_a_tight_one_does_not() -> None:
    loose = initial_capacity(deadline_s=12 * HOUR, work_s=10 * HOUR, overheads=OVERHEADS)
    tight = initial_capacity(deadline_s=10 * HOUR + 20 * 60, work_s=10 * HOUR, overheads=OVERHEADS)
    assert (loose.capacity, loose.slack_s) == (SPOT, 2 * HOUR)
    assert (tight.capacity, tight.slack_s) == (ON_DEMAND, 20 * 60)
    assert tight.reason.startswith("On-demand: 20 min of slack cannot absorb this start (8 min)")


def test_the_overheads_of_a_cloud_take_its_typical_provisioning_time() -> None:
    for cloud in CLOUDS:
        overheads = overheads_for(cloud)
        assert overheads.provision_s == traits(cloud).typical_provision_s
        assert (overheads.restart_s, overheads.lost_work_s) == (PLAN_RESTART_S, PLAN_LOST_WORK_S)
    assert overheads_for("aws", restart_s=60, lost_work_s=0).preemption_s == traits("aws").typical_provision_s + 60


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Progress(steps_done=901, total_steps=900, step_seconds=40), "progress.steps_done=901 is invalid"),
        (lambda: Progress(steps_done=0, total_steps=0, step_seconds=40), "progress.total_steps=0 is invalid"),
        (lambda: Progress(steps_done=0, total_steps=9, step_seconds=0.0), "progress.step_seconds=0.0 is invalid"),
        (lambda: Overheads(provision_s=-1, restart_s=0, lost_work_s=0), "overheads.provision_s=-1 is invalid"),
        (lambda: decide(now_s=0, deadline_s=0, steps_done=0), "deadline_s=0 is invalid"),
        (lambda: decide(now_s=-5, deadline_s=HOUR, steps_done=0), "now_s=-5 is invalid"),
        (lambda: initial_capacity(deadline_s=HOUR, work_s=0, overheads=OVERHEADS), "work_s=0 is invalid"),
    ],
)
def test_impossible_inputs_name_the_field_and_the_value(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_progress_from_the_trainer_s_file_or_the_estimate_when_it_is_not_usable() -> None:
    assert progress_from(40, 100, 2.0, estimated_s=999.0) == Progress(40, 100, 2.0)
    assert progress_from(None, None, None, estimated_s=3600.0) == Progress(0, 1, 3600.0)  # no file yet
    assert progress_from(40, 100, 0.0, estimated_s=3600.0) == Progress(0, 1, 3600.0)  # no step timed
    assert progress_from(120, 100, 2.0, estimated_s=3600.0) == Progress(100, 100, 2.0)  # fewer steps on restart
