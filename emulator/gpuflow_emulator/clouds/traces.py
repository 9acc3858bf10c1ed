"""Spot capacity traces: how many spot instances a zone could hold, tick by tick, replayed in cloud time.

A trace file (include/traces/PROVENANCE.md) is `{"metadata": {"gap_seconds": N}, "data": [v0, v1, ...]}`: value i
is how many spot instances could be launched or kept during tick i, each tick `gap_seconds` long. A scenario's
`spot_trace` knob replays one from `start_tick` when the emulator starts, a tick lasting `gap_seconds` cloud seconds
(or the knob's `tick_seconds`), divided by the scenario's time_scale like every other duration; after the last
tick the last value holds. A file that is missing or malformed is an error at scenario load, naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KNOB_FIELDS = frozenset({"file", "start_tick", "tick_seconds"})


@dataclass(frozen=True)
class SpotTrace:
    path: Path
    values: tuple[int, ...]
    tick_seconds: float  # real seconds (already divided by the time scale)
    start_tick: int = 0

    def value(self, elapsed: float) -> int:
        """Spot instances that can be held `elapsed` real seconds after the emulator started."""
        tick = self.start_tick + int(elapsed // self.tick_seconds)
        return self.values[min(tick, len(self.values) - 1)]


def load(spec: Mapping[str, Any], time_scale: float, root: Path) -> SpotTrace:
    """The trace a `spot_trace` knob names; a relative `file` is relative to `root` (the project checkout)."""
    if not isinstance(spec, Mapping) or "file" not in spec or set(spec) - KNOB_FIELDS:
        raise ValueError(f"spot_trace takes {sorted(KNOB_FIELDS)} with a file, not {spec!r}")
    path = root / str(spec["file"])
    values, gap = _read(path)
    start = int(spec.get("start_tick", 0))
    if not 0 <= start < len(values):
        raise ValueError(f"spot_trace file {path}: start_tick {start} is outside its {len(values)} ticks")
    tick = float(spec.get("tick_seconds", gap))
    if tick <= 0:
        raise ValueError(f"spot_trace file {path}: tick_seconds must be positive, not {tick}")
    return SpotTrace(path, values, tick / time_scale, start)


def _read(path: Path) -> tuple[tuple[int, ...], float]:
    """(values, gap_seconds) of a trace file, or a ValueError that names it and says what is wrong."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"spot_trace file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"spot_trace file {path} is not readable JSON: {exc}") from None
    raw = raw if isinstance(raw, dict) else {}
    data, metadata = raw.get("data"), raw.get("metadata")
    gap = metadata.get("gap_seconds") if isinstance(metadata, dict) else None
    if not data or not all(isinstance(v, int) and v >= 0 for v in data):
        raise ValueError(f"spot_trace file {path}: 'data' must be a non-empty list of counts (integers >= 0)")
    if not isinstance(gap, int | float) or gap <= 0:
        raise ValueError(f"spot_trace file {path}: 'metadata.gap_seconds' must be a positive number")
    return tuple(data), float(gap)
