"""gpuflow's policy driven through the simulation: one preemption at a known tick gives a known cost and finish time,
and each branch of train's recovery (the cloud's replacement, the next offer, the deadline's on-demand) shows."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from bench.cost.model import TICK_S, Job
from bench.cost.policies.product import Product
from gpuflow.core.request import CapacityPreference
from tests.support.cost_worlds import MakeWorld

USW2 = {zone: ("aws", "us-west-2", zone) for zone in ("usw2-az1", "usw2-az2", "usw2-az3")}  # spot .2464 .2479 .2386
EASTUS = ("azure", "eastus", None)  # spot 0.20425, on-demand 0.526; start-up 10 + 5 ticks
ON_DEMAND = 0.526  # g4dn.xlarge in us-west-2, and NC4as_T4_v3 in eastus
GPUFLOW = Product("gpuflow", CapacityPreference.SPOT_THEN_ON_DEMAND, deadline=True, max_fallbacks=32, max_recoveries=20)
SPOT_GREEDY = replace(GPUFLOW, name="spot-greedy", deadline=False)
SPOT_TWO_RECOVERIES = replace(SPOT_GREEDY, name="spot", capacity=CapacityPreference.SPOT, max_recoveries=2)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("gpuflow").setLevel(logging.WARNING)


def usd(*spans: tuple[float, int]) -> float:
    return sum(hourly * ticks * TICK_S / 3600 for hourly, ticks in spans)


def test_one_preemption_waits_for_the_replacement_then_moves_to_on_demand(make_world: MakeWorld) -> None:
    world = make_world({USW2["usw2-az3"]: [(0, 100)], USW2["usw2-az1"]: [], USW2["usw2-az2"]: []})
    job = Job(index=0, start=0, work=200, deadline=1000, checkpoint=30)
    outcome = GPUFLOW.run(world, job)
    # usw2-az3 spot from tick 0, training from 8, lost at 100 with 92 done (90 checkpointed); EKS replaces lost nodes,
    # so the run waits 300 s (5 ticks) for that, in vain; then the other zones' spot is refused and on-demand is
    # requested at 105, trains from 113 and finishes the 110 ticks left at 223.
    assert (outcome.finished_at, outcome.preemptions, outcome.recoveries) == (223, 1, 1)
    assert outcome.cost_usd == pytest.approx(usd((0.2386, 100), (ON_DEMAND, 118)))
    assert outcome.on_demand_usd == pytest.approx(usd((ON_DEMAND, 118)))


def test_spot_back_elsewhere_is_where_the_recovery_goes(make_world: MakeWorld) -> None:
    world = make_world({USW2["usw2-az3"]: [(0, 100)], USW2["usw2-az1"]: [(0, 3000)], USW2["usw2-az2"]: []})
    outcome = GPUFLOW.run(world, Job(index=0, start=0, work=200, deadline=1000, checkpoint=30))
    assert (outcome.finished_at, outcome.preemptions) == (223, 1)
    assert outcome.cost_usd == pytest.approx(usd((0.2386, 100), (0.2464, 118)))


def test_a_cloud_that_does_not_replace_nodes_moves_on_at_once(make_world: MakeWorld) -> None:
    world = make_world({EASTUS: [(0, 100)]})
    outcome = GPUFLOW.run(world, Job(index=0, start=0, work=200, deadline=1000, checkpoint=30))
    # training from tick 15, lost at 100 with 85 done (60 checkpointed); AKS spot pools do not replace an evicted
    # node, so on-demand is requested at once: start-up 15 again, then the 140 ticks left
    assert outcome.finished_at == 100 + 15 + 140
    assert outcome.cost_usd == pytest.approx(usd((0.20425, 100), (ON_DEMAND, 155)))


def test_a_recovery_takes_spot_while_the_slack_absorbs_one_more_preemption(make_world: MakeWorld) -> None:
    world = make_world({USW2["usw2-az3"]: [(0, 20)], USW2["usw2-az1"]: [(0, 3000)], USW2["usw2-az2"]: []})
    # lost at tick 20 with nothing checkpointed: far behind the uniform-progress line, but 180 ticks (3.3 h) of slack
    # absorb the start and one more preemption (76 min with the plan-time hour of lost work), so back to spot
    loose = Job(index=0, start=0, work=200, deadline=400, checkpoint=30)
    assert GPUFLOW.run(world, loose).cost_usd == pytest.approx(usd((0.2386, 20), (0.2464, 208)))
    # with 60 ticks (65 min) of slack left after the same loss, on-demand, at once (no wait for the spot node)
    tight = replace(loose, deadline=280)
    outcome = GPUFLOW.run(world, tight)
    assert outcome.cost_usd == pytest.approx(usd((0.2386, 20), (ON_DEMAND, 208)))
    assert outcome.finished_at == 228


def test_a_recovery_prices_the_next_preemption_with_the_job_s_checkpoint_interval(make_world: MakeWorld) -> None:
    """Two jobs lost at tick 100 with the same 90 ticks checkpointed and 65 ticks (70 min) of slack left: one more
    preemption redoes up to 10 ticks of work for the first, 90 ticks for the second."""
    world = make_world({USW2["usw2-az3"]: [(0, 100)], USW2["usw2-az1"]: [(0, 3000)], USW2["usw2-az2"]: []})
    often = Job(index=0, start=0, work=200, deadline=275, checkpoint=10)
    # spot: the 5-tick wait for EKS's replacement in vain, then usw2-az1 from 105
    assert GPUFLOW.run(world, often).cost_usd == pytest.approx(usd((0.2386, 100), (0.2464, 118)))
    rarely = replace(often, checkpoint=90)
    assert GPUFLOW.run(world, rarely).cost_usd == pytest.approx(usd((0.2386, 100), (ON_DEMAND, 118)))


def test_a_deadline_too_tight_for_a_preemption_plans_on_demand_only(make_world: MakeWorld) -> None:
    world = make_world({USW2["usw2-az3"]: [(0, 3000)], USW2["usw2-az1"]: [], USW2["usw2-az2"]: []})
    job = Job(index=0, start=0, work=100, deadline=110, checkpoint=30)
    outcome = GPUFLOW.run(world, job)
    assert outcome.finished_at == 108
    assert outcome.cost_usd == pytest.approx(usd((ON_DEMAND, 108)))


def test_more_losses_than_max_recoveries_fail_the_run(make_world: MakeWorld) -> None:
    def turns(first: int) -> list[tuple[int, int]]:  # each zone up 55 ticks in turn, overlapping the next by 5
        return [(start - 5, start + 50) for start in range(first, 3000, 150)]

    world = make_world({USW2["usw2-az3"]: turns(5), USW2["usw2-az1"]: turns(55), USW2["usw2-az2"]: turns(105)})
    outcome = SPOT_TWO_RECOVERIES.run(world, Job(index=0, start=0, work=500, deadline=2000, checkpoint=10))
    assert (outcome.finished_at, outcome.preemptions, outcome.recoveries) == (None, 3, 2)
    assert "max_recoveries=2" in outcome.failure
