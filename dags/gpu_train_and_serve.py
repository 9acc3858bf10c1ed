"""gpu_train_and_serve: plan, provision a GPU node pool on the cheapest cloud that has capacity, and tear it
all down again, failing over to the next offer on stockouts and quota errors.

Trigger it from the UI form or the REST API. The first task validates the whole request before any cloud
call; the teardown runs whatever happens after the pool was requested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from gpuflow.params import job_params, planning_params
from gpuflow.pipeline import train_and_serve

with DAG(
    dag_id="gpu_train_and_serve",
    description="Train and serve on the cheapest available GPU capacity across AWS, GCP and Azure.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["gpuflow", "training", "serving"],
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        **planning_params(accelerator="L4", count=1),
        **job_params(
            training_image="ghcr.io/gpuflow/train:0.1.0", training_command=["python", "-m", "gpuflow_training"]
        ),
    },
    doc_md=__doc__,
) as dag:
    train_and_serve()
