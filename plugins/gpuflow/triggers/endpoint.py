"""``EndpointTrigger``: wait in the triggerer until a vLLM endpoint serves its model.

Ready means the Deployment is available *and* ``/v1/models`` lists the served name through the API
server's service proxy, which is exactly how the smoke test and benchmark will reach it.

Given the pool it serves on, it also watches that pool's nodes: a node preempted or lost while it waits ends the
wait at once (``NodeLost``), so the task recovers the pool instead of waiting out the timeout on a paid pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind, Scope, describe
from gpuflow.core.handoffs import EndpointRef
from gpuflow.core.recovery import PodView, node_loss
from gpuflow.triggers import events

NEVER_SERVED = "EndpointNeverReady"
CRASHING = "EndpointCrashLooping"
NODE_LOST = "NodeLost"


class EndpointTrigger(BaseTrigger):
    """Polls the Deployment and ``/v1/models``; holds identifiers only (the cluster is rebuilt from its
    connection in the triggerer).

    :param cluster: the cluster's fields. :param namespace: :param name: the endpoint (Deployment and Service).
    :param served_model_name: the name ``/v1/models`` must list. :param port: the Service port.
    :param timeout_s: how long the endpoint may take to serve. :param poll_interval_s: seconds between polls.
    :param pool: the node pool it serves on (watched for a lost node; None: not watched). :param resource: the
        accelerator resource its nodes advertise. :param nodes: how many nodes the pool was planned with.
    """

    def __init__(
        self,
        cluster: dict[str, Any],
        namespace: str,
        name: str,
        served_model_name: str,
        port: int,
        timeout_s: float,
        poll_interval_s: float,
        pool: str | None = None,
        resource: str = "",
        nodes: int = 1,
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.served_model_name = served_model_name
        self.port = port
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.pool = pool
        self.resource = resource
        self.nodes = nodes

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "name": self.name,
            "served_model_name": self.served_model_name,
            "port": self.port,
            "timeout_s": self.timeout_s,
            "poll_interval_s": self.poll_interval_s,
            "pool": self.pool,
            "resource": self.resource,
            "nodes": self.nodes,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ref = EndpointRef(cluster=self.cluster["name"], namespace=self.namespace, name=self.name).to_xcom()
        deadline = time.monotonic() + self.timeout_s
        last = "not checked yet"
        code = NEVER_SERVED
        while time.monotonic() < deadline:
            try:
                serving, last, stop = await asyncio.to_thread(self._probe)
            except Exception as exc:  # the API or the proxy may be briefly unreachable while pods start
                serving, last, stop = False, describe(exc), None
            self.log.info("endpoint %s: %s", self.name, last)
            if serving:
                yield TriggerEvent(events.success(ref))
                return
            if stop:
                code, last = stop
                break
            await asyncio.sleep(self.poll_interval_s)
        error = CloudError(
            cloud=self.cluster["cloud"],
            code=code,
            kind=ErrorKind.INVALID if code == CRASHING else ErrorKind.CAPACITY,
            scope=Scope.OFFER,
            message=last
            if code == NODE_LOST
            else f"endpoint {self.name} did not serve {self.served_model_name} in {self.timeout_s:.0f}s; {last}",
            resource=self.name,
        )
        yield TriggerEvent(events.failed(error, ref))

    def _probe(self) -> tuple[bool, str, tuple[str, str] | None]:
        """One poll, with one kubeconfig: whether it serves, what was seen, and why it never will on this pool (a
        lost node, a crash report) as ``(code, message)``."""
        from gpuflow.clouds.access import kube_config
        from gpuflow.core.clouds import traits
        from gpuflow.kube.cluster import api_client, crash_report, deployment_status, pool_nodes
        from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint

        config = kube_config(Cluster(**self.cluster))
        api = api_client(config)
        status = deployment_status(api, self.namespace, self.name)
        if status is None:
            seen = "deployment not found"
        elif not status.get("availableReplicas"):
            seen = f"deployment not available yet ({status.get('unavailableReplicas', '?')} unavailable)"
        else:
            proxy = service_proxy_endpoint(config, self.namespace, self.name, self.port)
            with OpenAIClient(proxy, timeout_s=30) as client:
                models = client.models()
            if self.served_model_name in models:
                return True, f"serving {self.served_model_name}", None
            seen = f"/v1/models lists {models}, not {self.served_model_name}"
        if self.pool is not None:
            nodes = pool_nodes(api, traits(self.cluster["cloud"]).pool_label, self.pool, self.resource)
            if lost := node_loss(PodView(gone=True), nodes, self.nodes):
                return False, seen, (NODE_LOST, lost)
        crash = crash_report(api, self.namespace, f"app.kubernetes.io/instance={self.name}")
        return False, seen, (CRASHING, crash) if crash else None
