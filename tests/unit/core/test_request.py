from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gpuflow.core.catalog import CapacityType
from gpuflow.core.errors import RequestError
from gpuflow.core.request import Block, CapacityPreference, PlanRequest


@pytest.mark.parametrize(
    ("conf", "field", "hint"),
    [
        ({"accelerator": "H100", "count": 0}, "count", "from 1 to 16"),
        ({"accelerator": "H100", "count": "eight"}, "count", "an integer"),
        ({"accelerator": "H100", "nodes": 65}, "nodes", "from 1 to 64"),
        ({"accelerator": "H100", "capacity": "preemptible"}, "capacity", "spot-then-on-demand"),
        ({"accelerator": "H100", "clouds": ["aws", "oracle"]}, "clouds", "aws, gcp, azure"),
        ({"accelerator": "H100", "regions": ["US East"]}, "regions", "globs"),
        ({"accelerator": "H100", "max_hourly_usd": -1}, "max_hourly_usd", "a number from"),
        ({"accelerator": "H100", "budget_usd": "lots"}, "budget_usd", "a number"),
        ({"accelerator": "H100", "estimated_hours": float("nan")}, "estimated_hours", "finite"),
        ({"accelerator": "H100", "deadline_hours": "tomorrow"}, "deadline_hours", "a number"),
        ({"accelerator": "H100", "deadline_hours": 0}, "deadline_hours", "a number from 0.01"),
        (
            {"accelerator": "H100", "estimated_hours": 10, "deadline_hours": 8},
            "deadline_hours",
            "more than estimated_hours=10, the work that must fit before it (with time to get a node pool); set a "
            "later deadline, a smaller estimate, or no deadline",
        ),
        ({"accelerator": "H100", "estimated_hours": 10, "deadline_hours": 10}, "deadline_hours", "more than"),
        ({"accelerator": "H100", "gpus": 8}, "gpus", "not a request field"),
        ({}, "accelerator", "min_memory_gib"),
        ({"accelerator": "H100", "blocked": ["oracle/us"]}, "blocked.cloud", "aws, gcp, azure"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(conf: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(RequestError) as info:
        PlanRequest.from_mapping(conf)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}=")
    assert hint in str(info.value)


def test_loose_input_is_coerced() -> None:
    request = PlanRequest.from_mapping(
        {"accelerator": "H100", "count": "8", "clouds": "aws, GCP", "capacity": "Spot", "max_hourly_usd": "40"}
    )
    assert request.count == 8
    assert request.clouds == ("aws", "gcp")
    assert request.capacity is CapacityPreference.SPOT
    assert request.max_hourly_usd == 40.0


def test_none_means_default() -> None:
    assert PlanRequest.from_mapping({"accelerator": "L4", "count": None}).count == 1


def test_spot_then_on_demand_tries_spot_first() -> None:
    assert CapacityPreference.SPOT_THEN_ON_DEMAND.capacity_types == (CapacityType.SPOT, CapacityType.ON_DEMAND)


def test_block_strings_are_wildcard_records() -> None:
    block = Block.parse("gcp/*/us-central1-a")
    assert block == Block("gcp", zone="us-central1-a")
    expiring = Block.parse({"cloud": "aws", "region": "us-east-1", "expires_at": "2026-01-01T00:00:00+00:00"})
    assert expiring.is_active(datetime(2025, 12, 31, tzinfo=UTC))
    assert not expiring.is_active(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=1))


def test_request_round_trips_through_its_dict() -> None:
    request = PlanRequest(
        accelerator="H100",
        count=8,
        deadline_hours=12.5,
        blocked=(Block("gcp", capacity_type=CapacityType.SPOT),),
    )
    assert request.to_dict()["deadline_hours"] == 12.5
    assert PlanRequest.from_mapping(request.to_dict()) == request


def test_a_deadline_is_optional_and_read_from_loose_input() -> None:
    assert PlanRequest(accelerator="H100").deadline_hours is None
    request = PlanRequest.from_mapping({"accelerator": "H100", "estimated_hours": "4", "deadline_hours": "6.5"})
    assert request.deadline_hours == 6.5
