"""gpu_endpoint_watchdog: every 2 minutes, bring back kept endpoints whose spot pool their cloud shrank.

An endpoint kept after its run (``keep_endpoint_minutes``) has no task of its run watching it. When its spot node
is preempted, EKS and GKE replace the node and the endpoint serves again on its own; an AKS spot pool (eviction
policy Delete) shrinks and nothing comes back. This DAG scales such a pool back to the node count it was kept with,
on the same offer; a cloud that refuses for capacity is asked again at the next watch. It reads only pools
labelled as gpuflow's, and touches only those kept with an expiry still ahead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from gpuflow.operators.watchdog import EndpointWatchdogOperator

with DAG(
    dag_id="gpu_endpoint_watchdog",
    description="Scale kept endpoints' spot pools back to their size when their cloud does not replace lost nodes.",
    schedule=timedelta(minutes=2),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["gpuflow", "serving"],
    # A retry watches again (idempotent): a cluster that failed transiently is not left for the next watch.
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
) as dag:
    EndpointWatchdogOperator(task_id="watch", execution_timeout=timedelta(minutes=5))
