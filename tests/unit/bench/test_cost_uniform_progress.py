"""Our Uniform Progress, rule by rule, on hand-made traces of its home region (the traced region of the cheapest
spot offer: us-east-2, whose zones sell g4dn.xlarge spot at 0.1915 $/h and on-demand at 0.526)."""

from __future__ import annotations

import pytest

from bench.cost.model import TICK_S, Job
from bench.cost.policies.uniform_progress import UniformProgress, home_region
from tests.support.cost_worlds import MakeWorld

USE2 = {zone: ("aws", "us-east-2", zone) for zone in ("use2-az1", "use2-az2")}
USW2C = ("aws", "us-west-2", "usw2-az3")  # spot 0.2386: dearer, so not home
SPOT, ON_DEMAND = 0.1915, 0.526


def usd(*spans: tuple[float, int]) -> float:
    return sum(hourly * ticks * TICK_S / 3600 for hourly, ticks in spans)


def test_home_is_the_traced_region_of_the_cheapest_spot(make_world: MakeWorld) -> None:
    world = make_world({USE2["use2-az1"]: [], USW2C: [], ("azure", "westus2", None): []})
    assert home_region(world) == ("aws", "us-east-2")


def test_spot_whenever_the_region_has_it(make_world: MakeWorld) -> None:
    world = make_world({USE2["use2-az1"]: [], USE2["use2-az2"]: [(0, 3000)]})
    outcome = UniformProgress().run(world, Job(0, 0, work=100, deadline=400, checkpoint=20))
    assert outcome.finished_at == 108
    assert outcome.cost_usd == pytest.approx(usd((SPOT, 108)))


def test_ahead_of_the_line_it_waits_for_spot_paying_nothing(make_world: MakeWorld) -> None:
    world = make_world({USE2["use2-az1"]: [(0, 48), (60, 3000)], USE2["use2-az2"]: []})
    # lost at 48 with 40 saved; the line expects 40 only at tick 160: wait for spot, back at 60
    outcome = UniformProgress().run(world, Job(0, 0, work=100, deadline=400, checkpoint=20))
    assert (outcome.finished_at, outcome.preemptions) == (60 + 8 + 60, 1)
    assert outcome.cost_usd == pytest.approx(usd((SPOT, 48), (SPOT, 68)))


def test_behind_the_line_it_catches_up_on_demand_and_leaves_once_well_ahead(make_world: MakeWorld) -> None:
    world = make_world({USE2["use2-az1"]: [(0, 20), (100, 3000)], USE2["use2-az2"]: []})
    job = Job(0, 0, work=100, deadline=400, checkpoint=10)
    # lost at 20 with 10 saved, behind the line from tick 41: on-demand from 41, training from 49; d = 8 + 10, and
    # at its checkpoints from tick 100 (spot back) it leaves once saved >= 100 (t + 36) / 400: at tick 109, 70 saved
    outcome = UniformProgress().run(world, job)
    assert outcome.cost_usd == pytest.approx(usd((SPOT, 20), (ON_DEMAND, 109 - 41), (SPOT, 8 + 30)))
    assert outcome.finished_at == 109 + 8 + 30


def test_the_safety_net_finishes_on_demand(make_world: MakeWorld) -> None:
    world = make_world({USE2["use2-az1"]: [(0, 3000)], USE2["use2-az2"]: []})
    # slack 30 < 2d = 2 * (8 + 20): on-demand from the start, spot or not
    outcome = UniformProgress().run(world, Job(0, 0, work=100, deadline=130, checkpoint=20))
    assert outcome.finished_at == 108
    assert outcome.cost_usd == pytest.approx(usd((ON_DEMAND, 108)))
