from __future__ import annotations

import pytest

from bench.cost.world import bench_catalog
from gpuflow.core.catalog import Catalog
from tests.support.cost_worlds import MakeWorld, world_maker


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return bench_catalog()


@pytest.fixture
def make_world(catalog: Catalog) -> MakeWorld:
    return world_maker(catalog)
