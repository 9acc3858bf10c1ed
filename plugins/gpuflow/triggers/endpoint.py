"""``EndpointTrigger``: wait in the triggerer until a vLLM endpoint serves its model.

Ready means the Deployment is available *and* ``/v1/models`` lists the served name through the API
server's service proxy, which is exactly how the smoke test and benchmark will reach it.
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
from gpuflow.triggers import events

NEVER_SERVED = "EndpointNeverReady"
CRASHING = "EndpointCrashLooping"


class EndpointTrigger(BaseTrigger):
    """Polls the Deployment and ``/v1/models``; holds identifiers only (the cluster is rebuilt from its
    connection in the triggerer).

    :param cluster: the cluster's fields. :param namespace: :param name: the endpoint (Deployment and Service).
    :param served_model_name: the name ``/v1/models`` must list. :param port: the Service port.
    :param timeout_s: how long the endpoint may take to serve. :param poll_interval_s: seconds between polls.
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
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.served_model_name = served_model_name
        self.port = port
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "name": self.name,
            "served_model_name": self.served_model_name,
            "port": self.port,
            "timeout_s": self.timeout_s,
            "poll_interval_s": self.poll_interval_s,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ref = EndpointRef(cluster=self.cluster["name"], namespace=self.namespace, name=self.name).to_xcom()
        deadline = time.monotonic() + self.timeout_s
        last = "not checked yet"
        code = NEVER_SERVED
        while time.monotonic() < deadline:
            try:
                serving, last, crash = await asyncio.to_thread(self._probe)
            except Exception as exc:  # the API or the proxy may be briefly unreachable while pods start
                serving, last, crash = False, describe(exc), None
            self.log.info("endpoint %s: %s", self.name, last)
            if serving:
                yield TriggerEvent(events.success(ref))
                return
            if crash:
                code, last = CRASHING, crash
                break
            await asyncio.sleep(self.poll_interval_s)
        error = CloudError(
            cloud=self.cluster["cloud"],
            code=code,
            kind=ErrorKind.CAPACITY if code == NEVER_SERVED else ErrorKind.INVALID,
            scope=Scope.OFFER,
            message=f"endpoint {self.name} did not serve {self.served_model_name} in {self.timeout_s:.0f}s; {last}",
            resource=self.name,
        )
        yield TriggerEvent(events.failed(error, ref))

    def _probe(self) -> tuple[bool, str, str | None]:
        """One poll, with one kubeconfig: whether it serves, what was seen, and a crash report if it crashes."""
        from gpuflow.clouds.access import kube_config
        from gpuflow.kube.cluster import api_client, crash_report, deployment_status
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
        return False, seen, crash_report(api, self.namespace, f"app.kubernetes.io/instance={self.name}")
