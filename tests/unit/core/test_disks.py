"""The node disk size: the floor by default, a cluster's override when valid, and GiB in GB for GKE and AKS."""

from __future__ import annotations

import pytest

from gpuflow.core import disks
from gpuflow.core.errors import RequestError


def test_the_default_holds_the_image_and_the_model_and_is_at_least_the_floor() -> None:
    size = disks.disk_gib({})
    assert size >= disks.FLOOR_GIB
    assert size >= disks.SERVING_IMAGE_GIB + disks.MODEL_ALLOWANCE_GIB


def test_a_cluster_override_wins() -> None:
    assert disks.disk_gib({"disk_gib": 500}) == 500


@pytest.mark.parametrize("value", [20, "200", 99.5, True])
def test_a_bad_override_names_the_field_the_value_and_the_fix(value: object) -> None:
    with pytest.raises(RequestError) as error:
        disks.disk_gib({"disk_gib": value})
    assert error.value.field == "settings.disk_gib"
    assert error.value.value == value
    assert "at least 30" in error.value.expected


def test_gib_in_gb_rounds_up() -> None:
    assert disks.gib_in_gb(100) == 108  # 107.37 GB
    assert disks.gib_in_gb(0) == 0
