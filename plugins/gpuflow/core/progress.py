"""How far a training run is, from the ``progress.json`` the trainer keeps in its output URI.

Why it is read here, not in the pod: after a spot preemption the pod is gone, and whoever restarts the run with
the same output URI (spot or on demand) decides from the run's real progress. The trainer rewrites the file after
each checkpoint is complete (include/training/README.md, "progress.json"), so it never names a checkpoint that is
not there. Pure: the text comes from ``gpuflow.storage_io.read_text``; no file yet (a run before its first
checkpoint) is None, a file that is not the trainer's is a ``ProgressError`` naming its URI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpuflow.core.errors import GpuflowError

PROGRESS_FILE = "progress.json"


class ProgressError(GpuflowError):
    """A progress file that cannot be what the trainer wrote; the message names its URI and the bad field."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        super().__init__(f"training progress {uri} is malformed: {problem}")


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """The trainer's ``progress.json``: ``checkpoint`` (relative to the output URI) holds ``steps_done`` steps and
    is where a restart resumes; ``step_seconds`` is the mean wall time of one optimizer step in the last process;
    ``checkpoint_every`` the steps between periodic checkpoints (None: a file from a trainer before that field)."""

    steps_done: int
    total_steps: int
    step_seconds: float
    checkpoint: str
    updated_at: datetime  # UTC
    finished: bool
    restarts: int
    checkpoint_every: int | None = None


def progress_uri(output_uri: str) -> str:
    """Where the trainer keeps its progress for a run writing to ``output_uri``."""
    return f"{output_uri.rstrip('/')}/{PROGRESS_FILE}"


def parse_progress(text: str | None, uri: str) -> TrainingProgress | None:
    """The progress in ``text`` (read from ``uri``); None when there is no file yet. Keys the trainer may add
    later are ignored, so an older gpuflow reads a newer trainer's file."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProgressError(uri, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProgressError(uri, f"a JSON object was expected, got {type(data).__name__}")
    return TrainingProgress(
        steps_done=_count(data, "steps_done", uri, minimum=0),
        total_steps=_count(data, "total_steps", uri, minimum=1),
        step_seconds=_seconds(data, uri),
        checkpoint=_text(data, "checkpoint", uri),
        updated_at=_utc(data, uri),
        finished=_flag(data, "finished", uri),
        restarts=_count(data, "restarts", uri, minimum=0),
        checkpoint_every=_count(data, "checkpoint_every", uri, minimum=1) if "checkpoint_every" in data else None,
    )


def _field(data: dict[str, Any], name: str, uri: str) -> Any:
    if name not in data:
        raise ProgressError(uri, f"{name} is missing (it has {', '.join(sorted(data)) or 'no keys'})")
    return data[name]


def _count(data: dict[str, Any], name: str, uri: str, *, minimum: int) -> int:
    value = _field(data, name, uri)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProgressError(uri, f"{name}={value!r} is invalid: a whole number, at least {minimum}")
    return value


def _seconds(data: dict[str, Any], uri: str) -> float:
    value = _field(data, "step_seconds", uri)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ProgressError(uri, f"step_seconds={value!r} is invalid: seconds, a finite number >= 0")
    return float(value)


def _text(data: dict[str, Any], name: str, uri: str) -> str:
    value = _field(data, name, uri)
    if not isinstance(value, str) or not value:
        raise ProgressError(uri, f"{name}={value!r} is invalid: a non-empty string")
    return value


def _flag(data: dict[str, Any], name: str, uri: str) -> bool:
    value = _field(data, name, uri)
    if not isinstance(value, bool):
        raise ProgressError(uri, f"{name}={value!r} is invalid: true or false")
    return value


def _utc(data: dict[str, Any], uri: str) -> datetime:
    value = _field(data, "updated_at", uri)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ProgressError(uri, f"updated_at={value!r} is invalid: an ISO-8601 time with its UTC offset")
    return moment.astimezone(UTC)
