"""gpu_scheduled_retraining: the train-and-serve pipeline on a cron, or as soon as the training data is updated.

Runs on the cron of `include/config/retraining.yaml` or when the training-data asset it names gets an event
(a producer task's outlet, or `POST /api/v2/assets/events`), whichever comes first. The job is the config's
`job` section: the trigger form's defaults, so a scheduled run uses it and a manual run can change any field.

Why this file reads a file at parse time: the schedule must be known when the DAG is parsed, and it belongs in a
config file that is edited without touching code. The read is one small YAML file from this repository (local
disk, no network, database, Variable or Connection; about 10 ms), validated with the same `JobRequest` rules as a
run's first task, so a bad edit is an import error naming the file, the field and the fix, never a broken run.
One run at a time (`max_active_runs=1`): a tick or an asset event during a run does not start a second one
beside it, so a retrain never provisions a second GPU pool while one is running.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable

from gpuflow.core.retraining import load_retraining_config
from gpuflow.params import job_params, planning_params, with_defaults
from gpuflow.pipeline import train_and_serve

config = load_retraining_config()

with DAG(
    dag_id="gpu_scheduled_retraining",
    description="Retrain and serve on a cron or when the training data is updated, on the cheapest GPU capacity.",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(config.cron, timezone=config.timezone),
        assets=Asset(config.training_data_uri),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["gpuflow", "training", "serving", "scheduled"],
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params=with_defaults(
        {
            **planning_params(),
            **job_params(training_image=config.job.training_image, training_command=config.conf["training_command"]),
        },
        config.conf,
        source=config.source,
    ),
    doc_md=__doc__,
) as dag:
    train_and_serve()
