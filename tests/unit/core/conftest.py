"""The shipped catalog, loaded once for the whole core test suite."""

from __future__ import annotations

import pytest

from gpuflow.core.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()
