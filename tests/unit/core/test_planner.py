"""Planner behaviour on the real catalog: choice, fallbacks, filters and their explanations."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from gpuflow.core.catalog import CapacityType, Catalog
from gpuflow.core.errors import RequestError, UnsatisfiableRequest
from gpuflow.core.explain import format_plan
from gpuflow.core.planner import Choice, Plan, plan
from gpuflow.core.request import Block, CapacityPreference, PlanRequest

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def test_h100x8_spot_is_the_cheapest_valid_spot_offer(catalog: Catalog) -> None:
    result = plan(PlanRequest(accelerator="H100", count=8, capacity=CapacityPreference.SPOT), catalog, now=NOW)
    spot_prices = [
        o.spot_usd for o in catalog.offers if o.accelerator == "H100" and o.accelerator_count == 8 and o.spot_usd
    ]
    assert result.chosen.offer.spot_usd == min(spot_prices)
    assert result.chosen.capacity_type is CapacityType.SPOT


def test_same_request_gives_the_same_plan(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "A10G", "capacity": "spot-then-on-demand"})
    assert plan(request, catalog, now=NOW).to_dict() == plan(request, catalog, now=NOW).to_dict()


def test_rejection_counts_add_up_to_every_option_considered(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "L4", "capacity": "spot-then-on-demand", "regions": "us-*"})
    result = plan(request, catalog, now=NOW)
    assert result.candidates + sum(result.rejected.values()) == 2 * len(catalog.offers)
    assert result.rejected["regions"] > 0


def test_fallbacks_cover_other_regions_before_a_second_zone_of_any_region(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "T4", "max_fallbacks": 20})
    result = plan(request, catalog, now=NOW)
    regions = [(c.offer.cloud, c.offer.region) for c in (result.chosen, *result.fallbacks)]
    assert len(set(regions)) == len(regions) == 21
    prices = [c.hourly_usd for c in (result.chosen, *result.fallbacks)]
    assert prices == sorted(prices)


def test_a_region_with_many_zones_repeats_only_after_every_region_had_a_turn(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "H100", "count": 8, "clouds": "gcp", "regions": "us-*"})
    result = plan(request, catalog, now=NOW)
    regions = [c.offer.region for c in (result.chosen, *result.fallbacks)]
    distinct = len(set(regions))
    assert len(set(regions[:distinct])) == distinct
    assert len(regions) > distinct


def test_spot_then_on_demand_lists_every_spot_option_before_on_demand(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping(
        {"accelerator": "H100", "count": 8, "clouds": "azure", "capacity": "spot-then-on-demand", "max_fallbacks": 32}
    )
    result = plan(request, catalog, now=NOW)
    kinds = [c.capacity_type for c in (result.chosen, *result.fallbacks)]
    assert kinds[0] is CapacityType.SPOT
    assert CapacityType.ON_DEMAND in kinds
    assert kinds == sorted(kinds, key=[CapacityType.SPOT, CapacityType.ON_DEMAND].index)


def test_spot_estimate_includes_the_preemption_allowance(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping(
        {"accelerator": "L4", "capacity": "spot", "spot_allowance": 0.5, "estimated_hours": 10}
    )
    result = plan(request, catalog, now=NOW)
    assert result.estimated_total_usd == pytest.approx(result.chosen.hourly_usd * 1.5 * 10)


def test_multi_node_pools_are_priced_per_pool(catalog: Catalog) -> None:
    one = plan(PlanRequest(accelerator="A100-80GB", count=8), catalog, now=NOW)
    four = plan(PlanRequest(accelerator="A100-80GB", count=8, nodes=4), catalog, now=NOW)
    assert four.chosen.offer == one.chosen.offer
    assert four.chosen.hourly_usd == pytest.approx(4 * one.chosen.hourly_usd)


def test_active_blocks_remove_offers_and_expired_ones_do_not(catalog: Catalog) -> None:
    request = PlanRequest(accelerator="H100", count=8)
    first = plan(request, catalog, now=NOW).chosen.offer
    blocked = Block(first.cloud, region=first.region, expires_at=NOW + timedelta(minutes=30))
    replanned = plan(PlanRequest(accelerator="H100", count=8, blocked=(blocked,)), catalog, now=NOW)
    assert (replanned.chosen.offer.cloud, replanned.chosen.offer.region) != (first.cloud, first.region)
    assert replanned.rejected["blocked"] >= 1
    later = plan(PlanRequest(accelerator="H100", count=8, blocked=(blocked,)), catalog, now=NOW + timedelta(hours=1))
    assert later.chosen.offer == first


def test_a_quota_family_block_removes_that_family_there_and_leaves_the_others(catalog: Catalog) -> None:
    """After a P-instance vCPU quota refusal on AWS us-east-1, G instances there are still planned."""
    family = Block(
        "aws",
        region="us-east-1",
        quota_family="P",
        capacity_type=CapacityType.ON_DEMAND,
        expires_at=NOW + timedelta(hours=6),
    )
    request = PlanRequest(clouds=("aws",), regions=("us-east-1",), min_memory_gib=40, count=8)
    before = plan(request, catalog, now=NOW)
    after = plan(dataclasses.replace(request, blocked=(family,)), catalog, now=NOW)
    kinds = {c.offer.instance_type[0] for c in (after.chosen, *after.fallbacks)}
    assert "p" in {c.offer.instance_type[0] for c in (before.chosen, *before.fallbacks)}
    assert kinds == {"g"}
    assert after.rejected["blocked"] >= 1


def test_a_cloud_wide_block_removes_the_whole_cloud(catalog: Catalog) -> None:
    result = plan(PlanRequest(accelerator="H100", count=8, blocked=(Block("gcp"),)), catalog, now=NOW)
    assert all(c.offer.cloud != "gcp" for c in (result.chosen, *result.fallbacks))


def test_unsatisfiable_hourly_cap_names_the_cap_and_the_cheapest_price(catalog: Catalog) -> None:
    with pytest.raises(UnsatisfiableRequest) as info:
        plan(PlanRequest(accelerator="H100", count=8, max_hourly_usd=40), catalog, now=NOW)
    assert str(info.value) == "80 offers match H100x8 but all cost more than max_hourly_usd=40; cheapest is 43.07"


def test_unsatisfiable_budget_names_the_budget_and_the_cheapest_estimate(catalog: Catalog) -> None:
    request = PlanRequest(accelerator="H100", count=8, budget_usd=100, estimated_hours=10)
    with pytest.raises(UnsatisfiableRequest, match=r"budget_usd=100 over estimated_hours=10; cheapest estimate is"):
        plan(request, catalog, now=NOW)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"accelerator": "H100", "count": 3}, "no offer of H100 has count=3; offered counts: [1, 2, 4, 8]"),
        ({"min_memory_gib": 500}, "no accelerator has min_memory_gib>=500; the largest is B300 with 288 GiB"),
        ({"accelerator": "H100", "min_memory_gib": 90, "clouds": "gcp"}, "none is on clouds=['gcp']"),
        ({"accelerator": "H100", "min_memory_gib": 90, "regions": "mars-*"}, "none is in regions=['mars-*']"),
        ({"accelerator": "H100", "min_memory_gib": 100}, "none has min_memory_gib>=100"),
    ],
)
def test_unsatisfiable_requests_say_which_filter_removed_the_last_offers(
    catalog: Catalog, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(UnsatisfiableRequest, match=re.escape(message)):
        plan(PlanRequest.from_mapping(fields), catalog, now=NOW)


def test_unknown_accelerator_is_a_request_error_with_suggestions(catalog: Catalog) -> None:
    with pytest.raises(RequestError, match="did you mean H100"):
        plan(PlanRequest(accelerator="H10"), catalog, now=NOW)


def test_memory_request_spans_accelerator_models(catalog: Catalog) -> None:
    result = plan(PlanRequest(min_memory_gib=80, max_fallbacks=32), catalog, now=NOW)
    options = (result.chosen, *result.fallbacks)
    assert all((c.offer.memory_gib or 0) >= 80 for c in options)
    assert len({c.offer.accelerator for c in options}) > 1


def test_suspect_low_tier_choice_carries_a_warning(catalog: Catalog) -> None:
    result = plan(PlanRequest(accelerator="H100", count=8, clouds=("gcp",)), catalog, now=NOW)
    assert "suspect-price-tier" in result.chosen.offer.flags
    assert "priced far below" in result.warnings[0]


@pytest.mark.parametrize(
    ("accelerator", "why"),
    [
        ("tpu-v6e-1", "TPU slices are not provisioned as GKE TPU node pools yet"),
        ("Inferentia2", "does not run on AWS Neuron devices"),
        ("Trainium", "does not run on AWS Neuron devices"),
        ("V100", "vLLM needs NVIDIA compute capability 7.5 or newer; V100 has 7.0"),
    ],
)
def test_accelerators_gpuflow_cannot_run_on_are_refused_with_the_reason(
    catalog: Catalog, accelerator: str, why: str
) -> None:
    """A plan is for provisioning: a TPU slice sent as a GKE machine type, or a vLLM image on a chip it does not
    support, would fail after the pool was paid for."""
    with pytest.raises(UnsatisfiableRequest) as info:
        plan(PlanRequest(accelerator=accelerator), catalog, now=NOW)
    assert why in str(info.value)
    assert info.value.rejected["unsupported"] >= 1


def test_offers_of_unsupported_accelerators_are_counted_not_chosen(catalog: Catalog) -> None:
    result = plan(PlanRequest(min_memory_gib=16), catalog, now=NOW)
    chosen = {c.offer.accelerator for c in (result.chosen, *result.fallbacks)}
    assert not chosen & {"V100", "P100", "P4", "M60", "MI300X", "Inferentia2", "Trainium"}
    assert result.rejected["unsupported"] > 0


@pytest.mark.parametrize(("max_fallbacks", "on_demand"), [(8, 3), (2, 1), (1, 1)])
def test_spot_then_on_demand_keeps_a_third_of_the_fallbacks_for_on_demand(
    catalog: Catalog, max_fallbacks: int, on_demand: int
) -> None:
    """Spot offers alone would fill the list, and a spot stockout everywhere would end the run."""
    request = PlanRequest.from_mapping(
        {"accelerator": "L4", "capacity": "spot-then-on-demand", "max_fallbacks": max_fallbacks}
    )
    result = plan(request, catalog, now=NOW)
    kinds = [c.capacity_type for c in (result.chosen, *result.fallbacks)]
    assert len(kinds) == max_fallbacks + 1
    assert kinds == [CapacityType.SPOT] * (len(kinds) - on_demand) + [CapacityType.ON_DEMAND] * on_demand


def test_a_single_option_plan_is_of_the_preferred_capacity(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "L4", "capacity": "spot-then-on-demand", "max_fallbacks": 0})
    result = plan(request, catalog, now=NOW)
    assert result.chosen.capacity_type is CapacityType.SPOT
    assert result.fallbacks == ()


def test_when_every_option_fits_the_list_is_every_spot_option_then_every_on_demand_one(catalog: Catalog) -> None:
    one_region = {"accelerator": "L4", "clouds": "gcp", "regions": "us-central1", "max_fallbacks": 32}
    mixed, spot, on_demand = (
        plan(PlanRequest.from_mapping({**one_region, "capacity": capacity}), catalog, now=NOW)
        for capacity in ("spot-then-on-demand", "spot", "on-demand")
    )

    def options(p: Plan) -> list[Choice]:
        return [p.chosen, *p.fallbacks]

    assert len(options(spot)) + len(options(on_demand)) <= 33
    assert options(mixed) == options(spot) + options(on_demand)


def _kinds(result: Plan) -> set[tuple[str, CapacityType]]:
    return {(c.offer.cloud, c.capacity_type) for c in (result.chosen, *result.fallbacks)}


def test_a_deadline_too_tight_for_a_preemption_plans_on_demand_and_says_why(catalog: Catalog) -> None:
    """12 minutes to spare over 10 hours of work: one preemption (68 min or more with a new pool) would miss it."""
    request = PlanRequest.from_mapping(
        {"accelerator": "L4", "capacity": "spot-then-on-demand", "estimated_hours": 10, "deadline_hours": 10.2}
    )
    result = plan(request, catalog, now=NOW)
    assert {kind for _, kind in _kinds(result)} == {CapacityType.ON_DEMAND}
    assert result.rejected["deadline_hours"] > 0
    assert {cloud: d.capacity for cloud, d in result.deadline.items()} == dict.fromkeys(
        ("aws", "gcp", "azure"), CapacityType.ON_DEMAND
    )
    assert result.to_dict()["deadline"]["aws"]["slack_s"] == 720
    assert (
        "  aws: On-demand: 12 min of slack cannot absorb this start (8 min) and one more spot preemption (68 min) "
        "before the deadline. Its spot options are left out." in format_plan(result)
    )


def test_a_loose_deadline_keeps_the_spot_plan(catalog: Catalog) -> None:
    request = PlanRequest.from_mapping({"accelerator": "L4", "capacity": "spot-then-on-demand", "estimated_hours": 10})
    without = plan(request, catalog, now=NOW)
    loose = plan(dataclasses.replace(request, deadline_hours=14), catalog, now=NOW)
    assert loose.chosen == without.chosen
    assert loose.fallbacks == without.fallbacks
    assert loose.chosen.capacity_type is CapacityType.SPOT
    assert "deadline_hours" not in loose.rejected
    assert format_plan(loose).count(": Spot: 4.0 h of slack absorbs this start") == 3  # one line per cloud


def test_without_a_deadline_the_plan_has_no_deadline_part(catalog: Catalog) -> None:
    result = plan(PlanRequest(accelerator="L4", capacity=CapacityPreference.SPOT), catalog, now=NOW)
    assert result.deadline == {}
    assert result.to_dict()["deadline"] == {}
    assert "\ndeadline:" not in format_plan(result)


def test_a_deadline_drops_spot_only_where_that_clouds_provisioning_makes_it_too_tight(catalog: Catalog) -> None:
    """81 minutes to spare: enough on EKS and GKE (76 min), not on AKS, whose GPU nodes take about 10 min to come."""
    request = PlanRequest.from_mapping(
        {
            "accelerator": "A100-80GB",
            "count": 8,
            "capacity": "spot-then-on-demand",
            "estimated_hours": 10,
            "deadline_hours": 11.35,
            "max_fallbacks": 32,
        }
    )
    kinds = _kinds(plan(request, catalog, now=NOW))
    assert ("azure", CapacityType.SPOT) not in kinds
    assert {("aws", CapacityType.SPOT), ("gcp", CapacityType.SPOT)} & kinds


def test_a_spot_only_request_with_a_too_tight_deadline_says_what_to_change(catalog: Catalog) -> None:
    request = PlanRequest(
        accelerator="H100", count=8, capacity=CapacityPreference.SPOT, estimated_hours=10, deadline_hours=10.4
    )
    with pytest.raises(UnsatisfiableRequest) as info:
        plan(request, catalog, now=NOW)
    assert str(info.value) == (
        "80 offers match H100x8 but deadline_hours=10.4 leaves 24 min beyond estimated_hours=10, less than spot "
        "needs to absorb one more preemption (aws 76 min, azure 90 min, gcp 76 min); allow on-demand "
        "(capacity=spot-then-on-demand) or set a later deadline"
    )


def test_a_deadline_even_on_demand_misses_is_planned_with_a_warning(catalog: Catalog) -> None:
    request = PlanRequest(accelerator="L4", estimated_hours=10, deadline_hours=10.05)  # 3 minutes to spare
    result = plan(request, catalog, now=NOW)
    assert result.chosen.capacity_type is CapacityType.ON_DEMAND
    assert not result.deadline[result.chosen.offer.cloud].on_time
    assert result.warnings[-1].startswith(f"deadline_hours is likely missed on {result.chosen.offer.cloud}: Late")
