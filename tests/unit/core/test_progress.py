"""Reading the trainer's progress.json: a missing file is no progress yet, a wrong one an error naming its URI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gpuflow.core.progress import ProgressError, TrainingProgress, parse_progress, progress_uri

URI = "s3://artifacts/gpu_train_and_serve/abc123/progress.json"
# What the trainer writes (include/training/gpuflow_training/progress.py).
WRITTEN: dict[str, Any] = {
    "steps_done": 140,
    "total_steps": 200,
    "step_seconds": 0.412,
    "checkpoint": "checkpoints/step-00000140",
    "updated_at": "2026-05-04T12:34:56+00:00",
    "finished": False,
    "restarts": 1,
    "checkpoint_every": 20,
}


def _text(**changes: Any) -> str:
    return json.dumps({**WRITTEN, **changes})


def test_the_trainers_file_parses_into_its_fields() -> None:
    assert parse_progress(_text(), URI) == TrainingProgress(
        steps_done=140,
        total_steps=200,
        step_seconds=0.412,
        checkpoint="checkpoints/step-00000140",
        updated_at=datetime(2026, 5, 4, 12, 34, 56, tzinfo=UTC),
        finished=False,
        restarts=1,
        checkpoint_every=20,
    )


def test_a_file_from_a_trainer_before_the_checkpoint_interval_has_none() -> None:
    older = {k: v for k, v in WRITTEN.items() if k != "checkpoint_every"}
    progress = parse_progress(json.dumps(older), URI)
    assert progress is not None
    assert progress.checkpoint_every is None


def test_no_file_yet_is_no_progress() -> None:
    assert parse_progress(None, URI) is None


def test_a_time_with_another_offset_is_read_as_utc_and_a_whole_second_count_as_seconds() -> None:
    progress = parse_progress(_text(updated_at="2026-05-04T14:34:56+02:00", step_seconds=2), URI)
    assert progress is not None
    assert progress.updated_at == datetime(2026, 5, 4, 12, 34, 56, tzinfo=UTC)
    assert progress.step_seconds == 2.0


def test_keys_a_newer_trainer_adds_are_ignored() -> None:
    assert parse_progress(_text(tokens_seen=123), URI) == parse_progress(_text(), URI)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object was expected, got list"),
        (json.dumps({k: v for k, v in WRITTEN.items() if k != "restarts"}), "restarts is missing"),
        (_text(steps_done=-1), "steps_done=-1 is invalid: a whole number, at least 0"),
        (_text(steps_done=True), "steps_done=True is invalid"),
        (_text(total_steps=0), "total_steps=0 is invalid: a whole number, at least 1"),
        (_text(restarts="1"), "restarts='1' is invalid"),
        (_text(checkpoint_every=0), "checkpoint_every=0 is invalid: a whole number, at least 1"),
        (_text(checkpoint_every=None), "checkpoint_every=None is invalid"),
        (_text(step_seconds=-0.5), "step_seconds=-0.5 is invalid: seconds, a finite number >= 0"),
        (_text(step_seconds=float("nan")), "step_seconds=nan is invalid"),  # json.dumps writes NaN
        (_text(checkpoint=""), "checkpoint='' is invalid: a non-empty string"),
        (_text(finished="no"), "finished='no' is invalid: true or false"),
        (_text(updated_at="2026-05-04T12:34:56"), "updated_at='2026-05-04T12:34:56' is invalid: an ISO-8601 time"),
        (_text(updated_at="yesterday"), "updated_at='yesterday' is invalid"),
        (_text(updated_at=1714826096), "updated_at=1714826096 is invalid"),
    ],
)
def test_a_malformed_file_is_an_error_naming_its_uri_and_the_field(text: str, problem: str) -> None:
    with pytest.raises(ProgressError) as err:
        parse_progress(text, URI)
    assert str(err.value).startswith(f"training progress {URI} is malformed: ")
    assert problem in str(err.value)
    assert err.value.uri == URI


@pytest.mark.parametrize("output_uri", ["gs://bucket/dag/run", "gs://bucket/dag/run/"])
def test_the_progress_file_sits_at_the_root_of_the_output_uri(output_uri: str) -> None:
    assert progress_uri(output_uri) == "gs://bucket/dag/run/progress.json"
