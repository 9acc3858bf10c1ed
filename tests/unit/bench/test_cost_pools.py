"""The simulator's accounting: one pool on a hand-made trace, with its cost, progress and end worked out by hand."""

from __future__ import annotations

import pytest

from bench.cost.model import TICK_S, Job
from bench.cost.pools import End, Tally, hold
from bench.cost.world import SimOffer, World
from gpuflow.core.catalog import CapacityType
from tests.support.cost_worlds import MakeWorld

USW2C = ("aws", "us-west-2", "usw2-az3")  # g4dn.xlarge spot 0.2386 $/h; start-up 3 + 5 ticks
JOB = Job(index=0, start=0, work=100, deadline=400, checkpoint=30)


def spot(world: World) -> SimOffer:
    return world.offer((*USW2C, "g4dn.xlarge", CapacityType.SPOT))


def usd(hourly: float, ticks: int) -> float:
    return hourly * ticks * TICK_S / 3600


def test_a_pool_never_short_finishes_after_its_startup_and_the_work(make_world: MakeWorld) -> None:
    offer = spot(make_world({USW2C: [(0, 3000)]}))
    pool = hold(offer, 10, saved=0, job=JOB)
    assert (offer.provision_ticks, offer.restart_ticks) == (3, 5)
    assert (pool.ended, pool.end, pool.saved, pool.lost) == (End.FINISHED, 10 + 8 + 100, 100, 0)
    assert pool.cost_usd == pytest.approx(usd(0.2386, 108))


def test_a_preemption_keeps_the_last_checkpoint_and_pays_for_the_work_it_loses(make_world: MakeWorld) -> None:
    offer = spot(make_world({USW2C: [(0, 75)]}))
    pool = hold(offer, 0, saved=0, job=JOB)
    # training from tick 8; at tick 75 it has done 67 ticks of work, checkpointed at 60
    assert (pool.ended, pool.end, pool.saved, pool.lost) == (End.LOST, 75, 60, 7)
    assert pool.cost_usd == pytest.approx(usd(0.2386, 75))


def test_resuming_from_a_checkpoint_trains_only_what_is_left(make_world: MakeWorld) -> None:
    pool = hold(spot(make_world({USW2C: [(0, 3000)]})), 200, saved=60, job=JOB)
    assert (pool.ended, pool.end) == (End.FINISHED, 200 + 8 + 40)


def test_capacity_gone_while_provisioning_is_a_failed_start_not_a_preemption(make_world: MakeWorld) -> None:
    pool = hold(spot(make_world({USW2C: [(0, 2)]})), 0, saved=30, job=JOB)
    assert (pool.ended, pool.end, pool.saved, pool.was_ready) == (End.STARTUP_FAILED, 2, 30, False)


def test_capacity_gone_while_the_pod_starts_is_a_preemption(make_world: MakeWorld) -> None:
    pool = hold(spot(make_world({USW2C: [(0, 5)]})), 0, saved=30, job=JOB)
    assert (pool.ended, pool.saved, pool.lost, pool.was_ready) == (End.LOST, 30, 0, True)


def test_a_release_at_a_checkpoint_loses_nothing(make_world: MakeWorld) -> None:
    pool = hold(spot(make_world({USW2C: [(0, 3000)]})), 0, saved=0, job=JOB, release_at=8 + 60)
    assert (pool.ended, pool.end, pool.saved, pool.lost) == (End.RELEASED, 68, 60, 0)


def test_the_tally_counts_a_preemption_and_the_recovery_after_it(make_world: MakeWorld) -> None:
    offer = spot(make_world({USW2C: [(0, 75), (90, 3000)]}))
    tally = Tally(JOB)
    lost = tally.add(hold(offer, 0, saved=0, job=JOB))
    failed = tally.add(hold(offer, 80, saved=lost.saved, job=JOB))  # still down at 80: no capacity, no recovery
    done = tally.add(hold(offer, 90, saved=lost.saved, job=JOB))
    outcome = tally.finished(done.end)
    assert (failed.end - failed.start, done.end) == (0, 90 + 8 + 40)
    assert (outcome.preemptions, outcome.recoveries, outcome.finished_at) == (1, 1, 138)
    assert outcome.cost_usd == pytest.approx(usd(0.2386, 75 + 48))
