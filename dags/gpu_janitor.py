"""gpu_janitor: every 15 minutes, delete GPU node pools and endpoints that gpuflow runs left behind.

It looks at every cluster of the clusters file, only at what carries gpuflow's labels, and deletes what is
past its keep-time (``keep_endpoint_minutes``) or whose run has ended (a crashed teardown, a lost worker).
Resources of a run Airflow does not know are spared for a grace period (``GPUFLOW_JANITOR_GRACE_HOURS``,
default 6). Each run logs a table of what it deleted and kept, with reasons, and the GPUs and USD/h it
stopped; a cluster it could not sweep fails the run after the others were swept.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from gpuflow.operators.janitor import JanitorOperator

with DAG(
    dag_id="gpu_janitor",
    description="Reclaim expired endpoints and node pools that gpuflow runs left behind, on every cloud.",
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["gpuflow", "cleanup"],
    # A retry sweeps again (the sweep is idempotent): a cluster that failed transiently is not left for 15 minutes.
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    JanitorOperator(task_id="sweep")
