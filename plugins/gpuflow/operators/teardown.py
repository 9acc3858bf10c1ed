"""Delete everything a run created, on every cluster it could have touched, and prove it is gone.

Kubernetes objects (the endpoint's Deployment, Service and Secret, a training pod) go first, while their
nodes still exist; then the node pools.

It does not trust XCom for what exists: failover may have created several pools, and a task may have
died before recording one. It lists by the run's label on every cluster of the plan's options instead.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.base import CloudBackend, backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster, ClusterConfigError
from gpuflow.core.nodepool import NodePoolStatus, PoolState
from gpuflow.core.settings import poll_interval_s as poll_interval_s_setting
from gpuflow.kube.cluster import api_client, delete_objects, labelled_objects
from gpuflow.operators.runtime import JOB_NAMESPACE, clusters, plan_choices, run_of

DEFAULT_DELETE_TIMEOUT_S = 15 * 60


class TeardownOperator(BaseOperator):
    """Delete every Kubernetes object and node pool labelled with this run; fail if any is left after the timeout.

    :param plan_task_id: the task whose XCom holds the plan (the clusters to sweep come from its options).
    :param delete_timeout_s: how long deletions may take before the run is failed with what is left.
    :param poll_interval_s: seconds between checks while deletions finish (default ``GPUFLOW_POLL_INTERVAL_S``).
    """

    template_fields = ("plan_task_id",)
    ui_color = "#f6dede"

    def __init__(
        self,
        *,
        plan_task_id: str = "plan",
        delete_timeout_s: float = DEFAULT_DELETE_TIMEOUT_S,
        poll_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.delete_timeout_s = delete_timeout_s
        self.poll_interval_s = poll_interval_s

    def execute(self, context: Context) -> dict[str, Any]:
        run = run_of(context)
        label = {naming.RUN_LABEL: naming.run_key(run.dag_id, run.run_id)}
        backends = [backend_for(c) for c in self._clusters(context)]
        objects = [self._delete_objects(backend, label) for backend in backends]
        deleted = []
        for backend in backends:
            for status in backend.list_node_pools(label):
                self.log.info("deleting node pool %s on %s", status.ref.name, backend.cluster.name)
                backend.delete_node_pool(status.ref)
                deleted.append(status.ref.to_dict())
        left = self._wait_until_gone(backends, label)
        if left:
            names = ", ".join(f"{s.ref.cloud}/{s.ref.cluster}/{s.ref.name} ({s.state.value})" for s in left)
            raise AirflowException(
                f"teardown left {len(left)} node pool(s) after {self.delete_timeout_s:.0f}s: {names}"
            )
        self.log.info("teardown complete: %d node pool(s) deleted, none left", len(deleted))
        return {"deleted_pools": deleted, "deleted_objects": [o for group in objects for o in group]}

    def _delete_objects(self, backend: CloudBackend, label: dict[str, str]) -> list[str]:
        """The run's Kubernetes objects on this cluster; a cluster without any is skipped quickly."""
        client = api_client(backend.kube_config())
        selector = ",".join(f"{k}={v}" for k, v in label.items())
        found = labelled_objects(client, JOB_NAMESPACE, selector)
        delete_objects(client, JOB_NAMESPACE, found)
        names = [f"{kind}/{name}" for kind, name in found]
        if names:
            self.log.info("deleted on %s: %s", backend.cluster.name, ", ".join(names))
        return names

    def _clusters(self, context: Context) -> list[Cluster]:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        configured = clusters()
        found: dict[tuple[str, str], Cluster] = {}
        for choice in plan_choices(planned["plan"]) if planned else []:
            try:
                cluster = configured.for_region(choice["cloud"], choice["region"])
            except ClusterConfigError:
                continue
            found[cluster.key] = cluster
        return list(found.values())

    def _wait_until_gone(self, backends: list[CloudBackend], label: dict[str, str]) -> list[NodePoolStatus]:
        deadline = time.monotonic() + self.delete_timeout_s
        while True:
            left = [s for b in backends for s in b.list_node_pools(label) if s.state is not PoolState.GONE]
            if not left or time.monotonic() >= deadline:
                return left
            self.log.info("waiting for %d node pool(s) to finish deleting", len(left))
            time.sleep(self.poll_interval_s or poll_interval_s_setting())
