"""``OUTPUT_URI/progress.json``: how far the run is, for whoever restarts it after a preemption.

Why a file in the output: the pod is gone after a spot reclaim, and the supervisor (gpuflow's operator) must decide
from the run's real progress, and from how much work one more preemption could throw away (the checkpoint interval),
whether to restart it on spot or on demand, with the same output URI. The file is
rewritten after each checkpoint is published (the one written on SIGTERM included), when a restart resumes and when
the final model is published, so it never names a checkpoint that is not complete. It is replaced whole (see
``Store.write_file``), so a reader never sees half of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import OutputError
from .storage import Store

FILE = "progress.json"


@dataclass(frozen=True)
class Progress:
    """The file's content; ``checkpoint`` is relative to the output root (``checkpoints/step-00000100``)."""

    steps_done: int
    total_steps: int
    step_seconds: float  # mean wall seconds per optimizer step over this process's steps
    checkpoint: str
    updated_at: str  # ISO-8601, UTC
    finished: bool
    restarts: int  # how many times this output was resumed
    checkpoint_every: int  # steps between periodic checkpoints: a node lost without notice redoes at most that many


class StepClock:
    """Mean wall seconds per optimizer step in this process; until its first step, the previous process's mean
    (the best estimate a supervisor has right after a restart)."""

    def __init__(self, previous_mean: float) -> None:
        self.previous_mean = previous_mean
        self.seconds = 0.0
        self.steps = 0

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self.steps += 1

    @property
    def mean(self) -> float:
        return self.seconds / self.steps if self.steps else self.previous_mean


class ProgressFile:
    """Writes ``progress.json`` for one process of a run."""

    def __init__(self, store: Store, total_steps: int, checkpoint_every: int, restarts: int, clock: StepClock) -> None:
        self.store = store
        self.total_steps = total_steps
        self.checkpoint_every = checkpoint_every
        self.restarts = restarts
        self.clock = clock

    @classmethod
    def start(cls, store: Store, total_steps: int, checkpoint_every: int, *, resuming: bool) -> ProgressFile:
        """A fresh run counts no restart; a resumed one counts one more than the file it finds says."""
        previous = _previous(store)
        restarts = int(previous.get("restarts", 0)) + 1 if resuming else 0
        clock = StepClock(float(previous.get("step_seconds", 0.0)))
        return cls(store, total_steps, checkpoint_every, restarts, clock)

    def write(self, steps_done: int, checkpoint: str, *, finished: bool = False) -> None:
        """Describe ``checkpoint``, which must already be complete."""
        progress = Progress(
            steps_done=steps_done,
            total_steps=self.total_steps,
            step_seconds=round(self.clock.mean, 6),
            checkpoint=checkpoint,
            updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            finished=finished,
            restarts=self.restarts,
            checkpoint_every=self.checkpoint_every,
        )
        try:
            self.store.write_file(FILE, (json.dumps(asdict(progress), indent=2) + "\n").encode())
        except OSError as exc:
            raise OutputError(f"cannot write {FILE} under {self.store.uri!r}: {exc}") from exc


def _previous(store: Store) -> dict[str, Any]:
    """The file a previous process left, or nothing: a fresh output, one made before this file existed, or one
    whose file someone else overwrote (the count starts again rather than the paid-for run failing)."""
    try:
        found = json.loads(store.read_file(FILE))
    except (FileNotFoundError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
