"""Create a GPU node pool (the setup task) and wait for it (deferrable, failing over on late failures).

The setup only submits the create, so it cannot fail after a pool exists: in Airflow 3 a teardown does
not run when its setup failed, and a setup that waited and then timed out would leak the pool. For the same
reason the device plugin add-on (``gpuflow.kube.device_plugins``) is installed by the wait, before it defers:
a failed install there still leaves the pool to its teardown, and every failover target's cluster gets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gpuflow.clouds.access import kube_config
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import GpuflowError
from gpuflow.core.handoffs import PlanHandoff, PoolHandoff, cluster_fields
from gpuflow.core.settings import poll_interval_s as poll_interval_s_setting
from gpuflow.kube.cluster import api_client, ensure
from gpuflow.kube.device_plugins import NAMESPACE, addon_manifests
from gpuflow.operators.runtime import provisioner
from gpuflow.provisioning import Provisioner, ProvisioningStopped
from gpuflow.state.runs import RunRegistry
from gpuflow.triggers import events
from gpuflow.triggers.nodepool import NodePoolTrigger

DEFAULT_READY_TIMEOUT_S = 20 * 60
ATTEMPT_XCOM = "attempt"


def install_device_plugin(cluster: Cluster, resource: str) -> list[str]:
    """Create the device plugin add-on for ``resource`` on ``cluster`` where its nodes need one and it is missing;
    returns what was created (nothing when the node image ships the plugin or the add-on is already there)."""
    manifests = addon_manifests(cluster.cloud, resource)
    if not manifests:
        return []
    from kubernetes.utils import FailToCreateError

    try:
        return ensure(api_client(kube_config(cluster)), manifests)
    except FailToCreateError as exc:
        raise GpuflowError(
            f"cluster {cluster.name}: could not install the {resource} device plugin ({manifests[-1]['kind']} "
            f"{manifests[-1]['metadata']['name']} in {NAMESPACE}): {exc}. Without it the pool's nodes never "
            "advertise their accelerators. Fix: let gpuflow's identity create DaemonSets (and, for Neuron, RBAC "
            f"objects) in {NAMESPACE}, or install the plugin yourself under that name (docs/real-clouds.md)"
        ) from exc


class CreateNodePoolOperator(BaseOperator):
    """Request a node pool on the first option of the plan that a cloud accepts (fire-and-forget).

    :param plan_task_id: the task whose XCom holds the plan (``PlanOperator``).
    """

    template_fields = ("plan_task_id",)
    ui_color = "#fdf1d8"

    def __init__(self, *, plan_task_id: str = "plan", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        choices = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).choices
        p = provisioner(context)
        now = datetime.now(UTC)
        # Before any cloud call: whatever this run leaves behind, the janitor can find whose it was.
        RunRegistry().register(p.run.dag_id, p.run.run_id, now=now)
        requested_at = now.isoformat()
        with no_retry_when_stopped():
            spec, index = p.create_first(choices)
        self.log.info(
            "requested node pool %s on %s (option %d of %d)", spec.name, spec.cluster.name, index, len(choices)
        )
        return PoolHandoff.of(spec, index, choices[index], p.attempts, requested_at).to_xcom()


class WaitNodePoolOperator(BaseOperator):
    """Wait in the triggerer until the pool is ready; a pool that fails instead is deleted and the next
    option of the plan is requested, until one becomes ready or the options run out.

    :param create_task_id: the ``CreateNodePoolOperator`` task.
    :param ready_timeout_s: how long one pool may take to become ready.
    :param poll_interval_s: seconds between the trigger's polls (default ``GPUFLOW_POLL_INTERVAL_S``).
    """

    template_fields = ("create_task_id", "plan_task_id")
    ui_color = "#fdf1d8"

    def __init__(
        self,
        *,
        create_task_id: str = "create_node_pool",
        plan_task_id: str = "plan",
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        poll_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.create_task_id = create_task_id
        self.plan_task_id = plan_task_id
        self.ready_timeout_s = ready_timeout_s
        self.poll_interval_s = poll_interval_s

    def execute(self, context: Context) -> NoReturn:
        self._defer_on(context, PoolHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.create_task_id)))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        events.validate(event)
        state = PoolHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.task_id, key=ATTEMPT_XCOM))
        if event["status"] == events.SUCCESS:
            self.log.info("node pool %s is ready (%s nodes)", state.pool.name, event.get("ready_nodes"))
            return state.to_xcom()
        error = events.error_of(event)
        self.log.warning("node pool %s failed after it was accepted: %s", state.pool.name, error)
        choices = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).choices
        p: Provisioner = provisioner(context)
        with no_retry_when_stopped():
            p.abandon(p.spec_for(state.choice), state.choice, error)
            following = create_on_first(p, choices, range(state.index + 1, len(choices)), state)
        return self._defer_on(context, following)

    def _defer_on(self, context: Context, state: PoolHandoff) -> NoReturn:
        """Wait for the pool of ``state``; the state is kept in XCom, where the resumed task finds it."""
        context["ti"].xcom_push(key=ATTEMPT_XCOM, value=state.to_xcom())
        trigger = pool_trigger(self, state, self.ready_timeout_s, self.poll_interval_s)
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.ready_timeout_s + 60),
        )


def create_on_first(
    p: Provisioner, choices: Sequence[Mapping[str, Any]], candidates: Iterable[int], previous: PoolHandoff
) -> PoolHandoff:
    """Request a pool on the first of ``choices[candidates]`` a cloud accepts; the handoff keeps the attempts so
    far and the time the run first asked for a pool."""
    spec, index = p.create_first(choices, candidates)
    attempts = [*previous.attempts, *p.attempts]
    return PoolHandoff.of(spec, index, choices[index], attempts, previous.requested_at)


def pool_trigger(
    operator: BaseOperator, state: PoolHandoff, timeout_s: float, poll_interval_s: float | None
) -> NodePoolTrigger:
    """The trigger waiting for the pool of ``state`` to be ready, once its cluster has the device plugin add-on it
    needs (installed here, before the deferral, so every failover target's cluster gets it)."""
    if created := install_device_plugin(state.cluster, state.resource):
        operator.log.info("installed the device plugin add-on on %s: %s", state.cluster.name, ", ".join(created))
    return NodePoolTrigger(
        cluster=cluster_fields(state.cluster),
        ref=state.pool.to_dict(),
        resource=state.resource,
        accelerators_per_node=int(state.choice["accelerator_count"]),
        nodes=int(state.choice["nodes"]),
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s or poll_interval_s_setting(),
    )


@contextmanager
def no_retry_when_stopped() -> Iterator[None]:
    """A stop (an invalid request, a misconfigured cluster) fails the task for good: a retry would only try the
    plan's other offers, each failing alike after it was paid for."""
    try:
        yield
    except ProvisioningStopped as exc:
        raise AirflowFailException(str(exc)) from exc
