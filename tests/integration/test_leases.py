"""GPU leases in a real SQLite state database: granted in arrival order under the lock, released, asked again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpuflow.core.admission import GpuLimits
from gpuflow.state.admission import Leases

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_two_gpus_admit_two_one_gpu_runs_and_the_third_when_one_is_released(tmp_path: Path) -> None:
    leases, limits = Leases(f"sqlite:///{tmp_path / 'state.db'}"), GpuLimits(total=2)
    for number, key in enumerate(["a", "b", "c"]):
        leases.ask(run_key=key, dag_id="d", run_id=key, cloud="gcp", gpus=1, now=T0 + timedelta(seconds=number))
    assert leases.admit("c", limits, now=T0).granted is False  # a and b are granted on the way
    third = leases.admit("c", limits, now=T0)
    assert (third.granted, third.place, third.waiting, third.gpus_held) == (False, 1, 1, 2)
    leases.ask(run_key="c", dag_id="d", run_id="c", cloud="gcp", gpus=1, now=T0 + timedelta(hours=1))  # a retry
    assert leases.release("a", now=T0) is True
    assert leases.release("a", now=T0) is False
    assert leases.admit("c", limits, now=T0).granted is True
    assert sorted((lease.run_key, lease.granted) for lease in leases.open_leases()) == [("b", True), ("c", True)]
