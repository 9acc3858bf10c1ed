"""progress.json as the trainer writes it: the restart count, the step time carried over a restart, the checkpoint
interval, and a whole file every time (the end-to-end preemption test is in tests/ml)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "include" / "training"))

from gpuflow_training.progress import FILE, ProgressFile
from gpuflow_training.storage import Store


def _read(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / FILE).read_text()))


def test_a_fresh_run_counts_no_restart_times_its_own_steps_and_gives_its_checkpoint_interval(tmp_path: Path) -> None:
    progress = ProgressFile.start(Store(str(tmp_path)), 200, 100, resuming=False)
    progress.clock.add(0.5)
    progress.clock.add(1.5)

    progress.write(100, "checkpoints/step-00000100")

    written = _read(tmp_path)
    assert datetime.fromisoformat(written.pop("updated_at")).utcoffset() == timedelta(0)
    assert written == {
        "steps_done": 100,
        "total_steps": 200,
        "step_seconds": 1.0,
        "checkpoint": "checkpoints/step-00000100",
        "finished": False,
        "restarts": 0,
        "checkpoint_every": 100,
    }


def test_a_resume_counts_one_more_restart_and_keeps_the_step_time_until_its_first_step(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    first = ProgressFile.start(store, 200, 100, resuming=False)
    first.clock.add(0.25)
    first.write(100, "checkpoints/step-00000100")

    second = ProgressFile.start(store, 200, 50, resuming=True)  # restarted with --checkpoint-every 50
    second.write(100, "checkpoints/step-00000100")
    assert (_read(tmp_path)["restarts"], _read(tmp_path)["step_seconds"]) == (1, 0.25)
    assert _read(tmp_path)["checkpoint_every"] == 50  # the process that wrote the file

    second.clock.add(0.75)
    second.write(200, "checkpoints/step-00000200", finished=True)
    assert ProgressFile.start(store, 200, 100, resuming=True).restarts == 2
    assert (_read(tmp_path)["step_seconds"], _read(tmp_path)["finished"]) == (0.75, True)


def test_an_unreadable_file_restarts_the_count_instead_of_failing_the_run(tmp_path: Path) -> None:
    (tmp_path / FILE).write_text("{not json")
    assert ProgressFile.start(Store(str(tmp_path)), 10, 5, resuming=True).restarts == 1


def test_the_file_is_replaced_whole_with_nothing_left_beside_it(tmp_path: Path) -> None:
    progress = ProgressFile.start(Store(str(tmp_path)), 10, 5, resuming=False)
    for step in (5, 10):
        progress.write(step, f"checkpoints/step-{step:08d}")
    assert [p.name for p in tmp_path.iterdir()] == [FILE]
    assert (tmp_path / FILE).stat().st_mode & 0o777 == 0o644


def test_an_object_store_gets_the_file_in_one_upload() -> None:
    store = Store("memory://progress-unit")
    ProgressFile.start(store, 10, 5, resuming=False).write(10, "checkpoints/step-00000010", finished=True)
    assert json.loads(store.read_file(FILE))["finished"] is True
