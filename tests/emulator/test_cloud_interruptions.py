"""Each cloud's spot interruption is one complete record with its source, and a dropping trace takes the newest
spot nodes first (pure data and functions; the behaviour is in test_cloud_{eks,gke,aks}.py)."""

from __future__ import annotations

import pytest
from gpuflow_emulator.clouds.aks import AksFlavor
from gpuflow_emulator.clouds.eks import EksFlavor
from gpuflow_emulator.clouds.gke import GkeFlavor
from gpuflow_emulator.clouds.pools import AfterPreemption, Flavor, Pool
from gpuflow_emulator.clouds.spot import victims

FLAVORS: list[Flavor] = [EksFlavor(), GkeFlavor(), AksFlavor()]


@pytest.mark.parametrize("flavor", FLAVORS, ids=lambda f: f.cloud)
def test_every_cloud_says_how_it_takes_a_spot_node_back_and_where_that_is_written(flavor: Flavor) -> None:
    interruption = flavor.interruption
    assert interruption.notice_seconds > 0
    assert interruption.source.startswith("https://")
    if interruption.shutdown_windows is not None:
        assert sum(interruption.shutdown_windows) == interruption.notice_seconds


def test_the_per_cloud_figures() -> None:
    figures = {f.cloud: (f.interruption.notice_seconds, f.interruption.shutdown_windows) for f in FLAVORS}
    assert figures == {"aws": (120, None), "gcp": (30, (15, 15)), "azure": (30, None)}
    afters = {f.cloud: f.interruption.after for f in FLAVORS}
    assert afters == {
        "aws": AfterPreemption.REPLACE,
        "gcp": AfterPreemption.RECREATE,
        "azure": AfterPreemption.SHRINK,
    }


def test_a_dropping_trace_takes_the_newest_nodes_that_are_not_already_going() -> None:
    older = Pool("aws", "c", "older", "us-east-1", ("use1-az1",), "p3.2xlarge", 2, spot=True, serial=1)
    newer = Pool("aws", "c", "newer", "us-east-1", ("use1-az1",), "p3.2xlarge", 2, spot=True, serial=2)
    older.nodes, newer.nodes = ["o1", "o2"], ["n1", "n2"]
    newer.down = {"n2"}
    assert [node for _, node in victims([newer, older], 2)] == ["o2", "n1"]
    assert victims([newer, older], 0) == []
