"""The hindsight optimum: exact on hand-made traces, equal to a brute-force search on small ones, and never above a
policy that met the deadline, on a mix of jobs over the real traces."""

from __future__ import annotations

import logging
import math
import random
from functools import cache

import pytest

from bench.cost.jobs import job_mix
from bench.cost.model import TICK_S, Job
from bench.cost.optimum import cheapest
from bench.cost.run import POLICIES, run_all
from bench.cost.scenario import COPIES, trace_world
from bench.cost.world import Location, SimOffer, World
from gpuflow.core.catalog import CapacityType, Catalog
from tests.support.cost_worlds import MakeWorld

USW2C = ("aws", "us-west-2", "usw2-az3")  # spot 0.2386, on-demand 0.526; start-up 8 ticks


def usd(*spans: tuple[float, int]) -> float:
    return sum(hourly * ticks * TICK_S / 3600 for hourly, ticks in spans)


def test_spot_later_beats_on_demand_now_when_the_deadline_allows(make_world: MakeWorld) -> None:
    world = make_world({USW2C: [(30, 3000)]})
    # spot from tick 30: 8 ticks of start-up, then 20 of work by tick 58
    assert cheapest(world.offers, Job(0, 0, work=20, deadline=60, checkpoint=10)) == pytest.approx(usd((0.2386, 28)))


def test_a_tighter_deadline_mixes_on_demand_first_then_spot(make_world: MakeWorld) -> None:
    world = make_world({USW2C: [(0, 15), (30, 3000)]})
    # spot at 0 would be gone at 15, before its first checkpoint (8 + 10); so one interval on on-demand (0 to 18),
    # the other on spot (30 to 48): cheaper than 28 ticks of on-demand
    job = Job(0, 0, work=20, deadline=50, checkpoint=10)
    assert cheapest(world.offers, job) == pytest.approx(usd((0.526, 18), (0.2386, 18)))


def test_no_schedule_in_time_is_infinite(make_world: MakeWorld) -> None:
    world = make_world({USW2C: []})
    assert cheapest(world.offers, Job(0, 0, work=20, deadline=27, checkpoint=10)) == math.inf


@pytest.mark.parametrize("seed", range(6))
def test_the_optimum_equals_a_brute_force_search_on_small_random_worlds(make_world: MakeWorld, seed: int) -> None:
    rng = random.Random(seed)
    places: list[Location] = [
        ("aws", "us-west-2", "usw2-az1"),
        ("aws", "us-west-2", "usw2-az3"),
        ("azure", "eastus", None),
    ]
    spans = {place: [(s, s + rng.randrange(5, 30)) for s in range(rng.randrange(10), 90, 35)] for place in places}
    world = make_world(spans)
    job = Job(0, rng.randrange(5), work=rng.randrange(8, 30), deadline=rng.randrange(45, 90), checkpoint=7)
    assert cheapest(world.offers, job) == pytest.approx(brute_force(world, job))


def brute_force(world: World, job: Job) -> float:
    """The same model searched the long way: from (tick, work saved), wait a tick or hold a pool on an offer for
    its start-up and one or more whole intervals (or the rest of the work), with capacity up throughout."""
    end = job.start + job.deadline

    @cache
    def best(tick: int, saved: int) -> float:
        if saved == job.work:
            return 0.0
        if tick >= end:
            return math.inf
        options = [best(tick + 1, saved)]
        for offer in world.offers:
            options += [
                usd((offer.hourly_usd, span)) + best(tick + span, done) for span, done in pools(offer, tick, saved)
            ]
        return min(options)

    def pools(offer: SimOffer, tick: int, saved: int) -> list[tuple[int, int]]:
        found, done = [], saved
        while done < job.work:
            done = min(done + job.checkpoint, job.work)
            span = offer.startup_ticks + done - saved
            if tick + span > end or offer.availability.down_from(tick) < tick + span:
                break
            found.append((span, done))
        return found

    return best(job.start, 0)


@pytest.fixture(scope="module")
def traced(catalog: Catalog) -> World:
    return trace_world(catalog, seed=5)[0]


def test_no_policy_meeting_its_deadline_costs_less_than_the_optimum(traced: World) -> None:
    logging.getLogger("gpuflow").setLevel(logging.WARNING)
    mix = job_mix(40, seed=5, trace_ticks=traced.horizon // COPIES, quickest_startup=8)
    short = [j for j in mix.jobs if j.work < 12 * 3600 // TICK_S][:16]  # keep the test fast
    results = run_all(traced, short)  # raises OptimumBeaten on the first run below the optimum
    on_time = [(r, o) for r in results for o in r.outcomes.values() if o.on_time(r.job)]
    assert len(on_time) >= 0.9 * len(short) * len(POLICIES)
    assert all(o.cost_usd >= r.optimum_usd - 1e-9 for r, o in on_time)


def test_on_demand_offers_dearer_and_no_quicker_than_another_change_nothing(traced: World) -> None:
    job = Job(0, 1000, work=200, deadline=300, checkpoint=20)
    spot_and_cheapest = [o for o in traced.offers if o.capacity is CapacityType.SPOT or o.hourly_usd <= 0.526]
    assert cheapest(spot_and_cheapest, job) == pytest.approx(cheapest(traced.offers, job))
