"""Admission of GPU leases: limits read from the setting, grants strictly by arrival, the janitor's releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpuflow.core.admission import AdmissionError, GpuLimits, Lease, admitted, place, releasable

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def lease(key: str, gpus: int, minute: int, *, cloud: str = "aws", granted: bool = False) -> Lease:
    return Lease(key, cloud, gpus, T0 + timedelta(minutes=minute), granted)


def test_limits_are_read_from_the_setting_and_bad_ones_name_the_fix() -> None:
    assert GpuLimits.parse("total=16, aws=8,gcp=4") == GpuLimits(16, {"aws": 8, "gcp": 4})
    assert not GpuLimits.parse("").active
    with pytest.raises(AdmissionError, match="'oracle' is neither 'total' nor a cloud"):
        GpuLimits.parse("oracle=8")
    with pytest.raises(AdmissionError, match="aws='0' is not a whole number of GPUs of at least 1"):
        GpuLimits.parse("aws=0")


def test_a_job_larger_than_a_limit_is_refused_before_it_waits_forever() -> None:
    with pytest.raises(AdmissionError, match=r"needs 16 GPUs but GPUFLOW_GPU_LIMITS allows aws=8"):
        GpuLimits(None, {"aws": 8}).check_fits("aws", 16)
    GpuLimits(None, {"aws": 8}).check_fits("gcp", 16)  # no limit there


def test_leases_are_granted_by_arrival_while_they_fit() -> None:
    leases = [lease("a", 1, 0, granted=True), lease("b", 1, 1), lease("c", 1, 2)]
    assert admitted(leases, GpuLimits(total=2)) == ["b"]
    assert place(leases, "c") == 2
    assert place(leases, "a") == 0


def test_a_large_lease_at_the_head_is_not_overtaken_by_small_ones() -> None:
    leases = [lease("held", 2, 0, granted=True), lease("big", 4, 1), lease("small", 1, 2)]
    assert admitted(leases, GpuLimits(total=4)) == []  # "small" would fit, but "big" came first
    assert admitted([leases[1], leases[2]], GpuLimits(total=4)) == ["big"]


def test_per_cloud_limits_count_the_leases_admitted_to_that_cloud() -> None:
    leases = [lease("a", 2, 0, cloud="aws", granted=True), lease("b", 2, 1, cloud="aws"), lease("c", 2, 2, cloud="gcp")]
    assert admitted(leases, GpuLimits(None, {"aws": 3})) == []  # c (gcp) waits behind b
    assert admitted(leases, GpuLimits(6, {"aws": 4})) == ["b", "c"]


def test_the_janitor_releases_ended_runs_without_pools_from_a_complete_listing_only() -> None:
    runs = {"ended": "failed", "done": "success", "lost": "unknown", "busy": "running", "kept": "success"}
    assert releasable(runs, {"kept"}, complete_listing=True) == ["done", "ended", "lost"]
    assert releasable(runs, set(), complete_listing=False) == []
