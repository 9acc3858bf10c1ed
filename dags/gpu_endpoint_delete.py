"""gpu_endpoint_delete: delete a named endpoint (``endpoint_name`` of gpu_train_and_serve) and everything it holds.

A named endpoint outlives the runs that promote models onto it, and the janitor never reclaims its live revision:
deleting it is this explicit act. It finds the endpoint by its label on every configured cluster and deletes its
front Service, every revision (Deployment, Service, Secret) and their node pools, then closes their cost entries and
gives back their GPU leases. Nothing of that name left (or none there at all) is a success.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from gpuflow.operators.named_endpoint import DeleteEndpointOperator

with DAG(
    dag_id="gpu_endpoint_delete",
    description="Delete a named vLLM endpoint, its revisions and their GPU node pools, on whichever cloud it is.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["gpuflow", "serving", "cleanup"],
    default_args={"owner": "gpuflow", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "endpoint_name": Param(
            "",
            type="string",
            pattern="^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$",
            title="Endpoint name",
            description="The endpoint_name the endpoint was created with.",
        )
    },
    doc_md=__doc__,
) as dag:
    DeleteEndpointOperator(task_id="delete_endpoint", endpoint_name="{{ params.endpoint_name }}")
