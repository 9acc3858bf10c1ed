"""The planner is exact: for random valid requests it finds what a brute-force scan of the catalog finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuflow.core.catalog import load_catalog
from gpuflow.core.clouds import CLOUDS
from gpuflow.core.errors import UnsatisfiableRequest
from gpuflow.core.planner import plan
from gpuflow.core.request import Block, CapacityPreference, PlanRequest
from tests.support.planner_oracle import oracle

NOW = datetime(2026, 11, 29, tzinfo=UTC)
CATALOG = load_catalog()
REGIONS = sorted({o.region for o in CATALOG.offers})
ZONES = sorted({(o.cloud, o.zone) for o in CATALOG.offers if o.zone})


blocks = st.one_of(
    st.builds(Block, cloud=st.sampled_from(CLOUDS)),
    st.builds(lambda cz: Block(cz[0], zone=cz[1]), st.sampled_from(ZONES)),
    st.builds(
        lambda o, minutes: Block(o.cloud, region=o.region, expires_at=NOW + timedelta(minutes=minutes)),
        st.sampled_from(CATALOG.offers),
        st.integers(-60, 60),
    ),
)

memory = st.sampled_from([16, 24, 40, 48, 80, 100, 141])
# Shapes drawn from real offers, so most requests are satisfiable and the comparison means something.
offer_shapes = st.sampled_from(CATALOG.offers).map(lambda o: (o.accelerator, o.accelerator_count))
shape = st.one_of(
    st.tuples(st.tuples(offer_shapes, st.one_of(st.none(), memory)), st.just(None)),
    st.tuples(st.tuples(st.just((None, 1)), memory), st.sampled_from([1, 2, 4, 8, 3])),
)


def build(
    what: tuple[tuple[tuple[str | None, int], float | None], int | None],
    spare_hours: float | None,
    **fields: object,
) -> PlanRequest:
    ((accelerator, offered_count), min_memory), count = what
    estimated = fields["estimated_hours"]
    assert isinstance(estimated, float)
    return PlanRequest(
        accelerator=accelerator,
        min_memory_gib=min_memory,
        count=count or offered_count,
        deadline_hours=None if spare_hours is None else estimated + spare_hours,
        **fields,  # type: ignore[arg-type]
    )


requests = st.builds(
    build,
    shape,
    st.one_of(st.none(), st.none(), st.floats(0.01, 2)),  # hours a deadline leaves beyond the estimate
    nodes=st.integers(1, 4),
    capacity=st.sampled_from(list(CapacityPreference)),
    clouds=st.lists(st.sampled_from(CLOUDS), min_size=1, max_size=3, unique=True).map(tuple),
    regions=st.one_of(
        st.just(("*",)),
        st.just(("*",)),
        st.lists(st.sampled_from(["us-*", "europe-*", "asia-*", "*east*", *REGIONS]), min_size=1, max_size=3).map(
            tuple
        ),
    ),
    max_hourly_usd=st.one_of(st.none(), st.none(), st.floats(0.05, 500)),
    budget_usd=st.one_of(st.none(), st.none(), st.floats(1, 20_000)),
    estimated_hours=st.floats(0.1, 100),
    spot_allowance=st.sampled_from([0.0, 0.25, 1.0]),
    blocked=st.lists(blocks, max_size=4).map(tuple),
)


CLOUD_REGIONS = sorted({(o.cloud, o.region) for o in CATALOG.offers})
cluster_sets = st.one_of(st.none(), st.none(), st.sets(st.sampled_from(CLOUD_REGIONS), min_size=1, max_size=40))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, cluster_sets)
def test_chosen_option_costs_what_the_brute_force_oracle_finds(
    request: PlanRequest, clusters: set[tuple[str, str]] | None
) -> None:
    expected = oracle(request, CATALOG, NOW, clusters)
    try:
        result = plan(request, CATALOG, now=NOW, clusters=clusters)
    except UnsatisfiableRequest:
        assert expected is None
        return
    assert expected is not None
    order = request.capacity.capacity_types
    assert (order.index(result.chosen.capacity_type), result.chosen.effective_hourly_usd) == expected
