"""``TrainingJobTrigger``: wait in the triggerer until the multi-node training Job is ``Complete`` or ``Failed``.

Why not the provider's ``KubernetesJobTrigger``: its hook takes a connection only (the ``config_file`` it is given
is not passed on), while each run's cluster is reached with a kubeconfig from its cloud's API, fresh at every poll
(tokens expire during a long training). It holds identifiers only, as ``EndpointTrigger`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import describe


class TrainingJobTrigger(BaseTrigger):
    """Polls the Job's conditions; the event is ``{"status": "success" | "error", "name", "namespace",
    "reason", "message"}`` (the ``Failed`` condition's reason and message)."""

    def __init__(self, cluster: dict[str, Any], namespace: str, name: str, poll_interval_s: float) -> None:
        super().__init__()
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "name": self.name,
            "poll_interval_s": self.poll_interval_s,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                ended = await asyncio.to_thread(self._ended)
            except Exception as exc:  # the API may be briefly unreachable; the Job goes on without us
                self.log.warning("training Job %s not read: %s", self.name, describe(exc))
                ended = None
            if ended is not None:
                yield TriggerEvent({"name": self.name, "namespace": self.namespace, **ended})
                return
            await asyncio.sleep(self.poll_interval_s)

    def _ended(self) -> dict[str, str] | None:
        """The Job's end as the event's fields, or None while it runs; a Job gone (deleted) is a failure."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        from gpuflow.clouds.access import kube_config
        from gpuflow.kube.cluster import api_client

        batch = k8s.BatchV1Api(api_client(kube_config(Cluster(**self.cluster))))
        try:
            job = batch.read_namespaced_job_status(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return {"status": "error", "reason": "NotFound", "message": "the Job was deleted before it ended"}
        for condition in (job.status.conditions if job.status else None) or []:
            if condition.status == "True" and condition.type in ("Complete", "Failed"):
                status = "success" if condition.type == "Complete" else "error"
                return {"status": status, "reason": condition.reason or "", "message": condition.message or ""}
        return None
