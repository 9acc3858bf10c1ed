"""Spot capacity as the simulation reads it: up or down at each tick, with the next change found in O(1).

A trace holds one value per probe; a probe's value holds until the next one, so it is repeated over the ticks of its
interval. ``down_from``/``up_from`` answer from arrays computed once, so a policy jumps from event to event instead of
stepping tick by tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.cost.model import TICK_S

Ticks = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Availability:
    """Whether the capacity is there at each tick; past the end it counts as gone."""

    up: npt.NDArray[np.bool_]
    next_down: Ticks  # first tick >= t that is down (len(up) when none)
    next_up: Ticks  # first tick >= t that is up (len(up) when none)

    @classmethod
    def of(cls, up: Sequence[bool] | npt.NDArray[np.bool_]) -> Availability:
        values = np.asarray(up, dtype=bool)
        return cls(values, _first_from(~values), _first_from(values))

    @classmethod
    def from_trace(cls, values: Sequence[float], gap_s: int, *, repeat: int = 1) -> Availability:
        """A trace of probes ``gap_s`` apart (a value > 0 is up), laid ``repeat`` times end to end."""
        if gap_s % TICK_S:
            raise ValueError(f"a trace's gap ({gap_s} s) must be a whole number of {TICK_S}-s ticks")
        up = np.repeat(np.asarray(values) > 0, gap_s // TICK_S)
        return cls.of(np.tile(up, repeat))

    @classmethod
    def always(cls, length: int) -> Availability:
        """On-demand capacity: never short (the paper's assumption, and ours)."""
        return cls.of(np.ones(length, dtype=bool))

    def __len__(self) -> int:
        return len(self.up)

    def is_up(self, tick: int) -> bool:
        return 0 <= tick < len(self.up) and bool(self.up[tick])

    def down_from(self, tick: int) -> int:
        return int(self.next_down[tick]) if tick < len(self.up) else tick

    def up_from(self, tick: int) -> int:
        return int(self.next_up[tick]) if tick < len(self.up) else len(self.up)

    @property
    def share_up(self) -> float:
        return float(self.up.mean())


def _first_from(mask: npt.NDArray[np.bool_]) -> Ticks:
    """For each tick, the first tick at or after it where ``mask`` holds (``len(mask)`` when none does)."""
    positions = np.where(mask, np.arange(len(mask), dtype=np.int64), np.int64(len(mask)))
    return np.minimum.accumulate(positions[::-1])[::-1]
