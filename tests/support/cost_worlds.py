"""Small worlds for the cost benchmark's tests: the benchmark's catalog, with availability written by hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bench.cost.availability import Availability
from bench.cost.world import Location, World, build_world
from gpuflow.core.catalog import Catalog

LENGTH = 3000  # ticks of availability in a hand-made world

Spans = Sequence[tuple[int, int]]
MakeWorld = Callable[[Mapping[Location, Spans]], World]


def up_between(spans: Spans, length: int = LENGTH) -> Availability:
    """Capacity up during each [start, end) of ``spans``, down otherwise."""
    up = [False] * length
    for start, end in spans:
        up[start:end] = [True] * (end - start)
    return Availability.of(up)


def world_maker(catalog: Catalog) -> MakeWorld:
    """Worlds of the given places, each spot offer up during its spans (on-demand is always up)."""

    def make(places: Mapping[Location, Spans]) -> World:
        return build_world(catalog, {place: up_between(spans) for place, spans in places.items()})

    return make
