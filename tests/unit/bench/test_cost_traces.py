"""The traces under the benchmark: how AWS zone names meet catalog zone ids, how probes become ticks, and the
synthetic zones' determinism."""

from __future__ import annotations

import pytest

from bench.cost.availability import Availability
from bench.cost.scenario import trace_world
from bench.cost.traces import SpotProcess, Trace, aws_traces, zone_ids_by_position
from gpuflow.core.catalog import Catalog


def test_zone_names_take_the_catalog_zone_ids_by_position_within_their_region() -> None:
    mapping = zone_ids_by_position(
        ["us-east-1f", "us-east-1a", "us-west-2b"],
        {"us-east-1": ["use1-az6", "use1-az2", "use1-az4"], "us-west-2": ["usw2-az2"]},
    )
    assert mapping == {"use1-az2": "us-east-1a", "use1-az4": "us-east-1f", "usw2-az2": "us-west-2b"}


def test_a_region_with_fewer_priced_zones_than_traces_is_refused() -> None:
    with pytest.raises(ValueError, match="us-east-2: 2 traced zones"):
        zone_ids_by_position(["us-east-2a", "us-east-2b"], {"us-east-2": ["use2-az1"]})


def test_a_probe_holds_for_the_three_ticks_of_its_interval_and_the_trace_is_laid_twice() -> None:
    availability = Availability.from_trace([1, 0, 2], gap_s=195, repeat=2)
    assert availability.up.tolist() == [True] * 3 + [False] * 3 + [True] * 6 + [False] * 3 + [True] * 3
    assert (availability.down_from(0), availability.up_from(3), availability.down_from(6)) == (3, 6, 12)
    assert availability.down_from(15) == 18  # up to the end: past it, capacity counts as gone


def test_the_nine_traced_zones_are_all_on_catalog_offers(catalog: Catalog) -> None:
    world, made = trace_world(catalog, seed=1)
    assert len(made["aws_zones"]) == len(aws_traces()) == 9
    assert made["aws_zones"]["use1-az1"] == "us-east-1a"
    assert {o.cloud for o in world.offers} == {"aws", "gcp", "azure"}


def test_a_synthetic_zone_is_the_same_for_a_seed_and_differs_between_zones() -> None:
    process = SpotProcess(mean_up_h=4.0, median_up_h=1.0, mean_down_h=1.5, median_down_h=0.5)
    first = process.trace("us-central1-a", seed=3, gap_s=195, length=5000)
    assert first == process.trace("us-central1-a", seed=3, gap_s=195, length=5000)
    assert first != process.trace("us-central1-b", seed=3, gap_s=195, length=5000)
    assert 0.5 < sum(first.values) / len(first.values) < 0.95


def test_the_synthetic_process_is_the_median_traced_zone() -> None:
    def zone(up: int, down: int) -> Trace:  # probes up, then down, twice
        return Trace("us-east-1a", 195, tuple(([1] * up + [0] * down) * 2))

    process = SpotProcess.like([zone(10, 40), zone(74, 18), zone(200, 20)])
    assert process.mean_up_h == pytest.approx(74 * 195 / 3600)
    assert process.median_down_h == pytest.approx(20 * 195 / 3600)
