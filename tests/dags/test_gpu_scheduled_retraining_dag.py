"""gpu_scheduled_retraining: the schedule and the form come from include/config/retraining.yaml, the tasks from
the same factory as gpu_train_and_serve."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable
from airflow.serialization.definitions.assets import SerializedAsset
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.assets import AssetOrTimeSchedule as SchedulerAssetOrTimeSchedule
from airflow.timetables.base import TimeRestriction
from croniter import croniter

from gpuflow.core.job import JobRequest
from gpuflow.core.retraining import RetrainingConfig, load_retraining_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    files = ("gpu_scheduled_retraining.py", "gpu_train_and_serve.py")
    return {dag_id: dag for f in files for dag_id, dag in DagBag(dag_folder=str(ROOT / "dags" / f)).dags.items()}


@pytest.fixture(scope="module")
def dag(dags: dict[str, Any]) -> Any:
    return dags["gpu_scheduled_retraining"]


@pytest.fixture(scope="module")
def config() -> RetrainingConfig:
    return load_retraining_config()


def test_runs_on_the_configured_cron_or_when_the_training_data_asset_is_updated(
    dag: Any, config: RetrainingConfig
) -> None:
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable == CronTriggerTimetable(config.cron, timezone=config.timezone)
    assert dag.timetable.asset_condition == Asset(config.training_data_uri)


def test_the_scheduler_sees_the_same_schedule_after_serialization(dag: Any, config: RetrainingConfig) -> None:
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    timetable = scheduled.timetable
    assert isinstance(timetable, SchedulerAssetOrTimeSchedule)
    cron = timetable.timetable.serialize()
    assert (cron["expression"], cron["timezone"]) == (config.cron, config.timezone)
    assert isinstance(timetable.asset_condition, SerializedAsset)
    assert timetable.asset_condition.uri == config.training_data_uri
    assert scheduled.max_active_runs == 1


def test_one_run_at_a_time(dag: Any) -> None:
    assert dag.max_active_runs == 1
    assert not dag.catchup


def test_the_tasks_are_the_train_and_serve_pipeline(dags: dict[str, Any]) -> None:
    retrain, manual = dags["gpu_scheduled_retraining"], dags["gpu_train_and_serve"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in retrain.tasks} == {
        t.task_id: sorted(t.downstream_task_ids) for t in manual.tasks
    }


def test_the_form_defaults_are_the_validated_job_of_the_config(dag: Any, config: RetrainingConfig) -> None:
    defaults = {name: param.value for name, param in dag.params.items()}
    assert defaults == config.conf
    assert JobRequest.from_mapping(defaults) == config.job
    assert dag.params.validate() == defaults  # every default passes its form field's schema


def test_unpausing_runs_the_most_recent_tick_once_and_never_the_ones_before(dag: Any, config: RetrainingConfig) -> None:
    """What docs/retraining.md promises of an unpause: the latest tick of the cron (catchup is off), not a backlog."""
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    now = pendulum.now("UTC")
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=False)
    first = scheduled.timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    latest_tick = croniter(config.cron, now.in_timezone(config.timezone)).get_prev(datetime)
    assert first is not None
    assert first.run_after == latest_tick
    following = scheduled.timetable.next_dagrun_info(
        last_automated_data_interval=first.data_interval, restriction=restriction
    )
    assert following is not None
    assert following.run_after > now
