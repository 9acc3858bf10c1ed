"""``AdmitOperator``: take the run's GPU lease before its first node pool is asked for, waiting deferred in a
queue fair by arrival while the limits (``GPUFLOW_GPU_LIMITS``) are in use (``gpuflow.core.admission``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gpuflow.core import naming
from gpuflow.core.admission import AdmissionError
from gpuflow.core.handoffs import PlanHandoff
from gpuflow.core.settings import gpu_limits, poll_interval_s
from gpuflow.operators.runtime import run_of
from gpuflow.state.admission import Leases
from gpuflow.triggers import events
from gpuflow.triggers.admission import AdmissionTrigger

# A lease waits as long as the runs ahead hold their GPUs: days for long trainings.
MAX_WAIT = timedelta(days=7)


class AdmitOperator(BaseOperator):
    """Ask for the plan's GPUs (count x nodes) on its first option's cloud; return at once when no limit is set or
    the lease is granted, else wait in the triggerer for it.

    :param plan_task_id: the task whose XCom holds the plan.
    """

    template_fields = ("plan_task_id",)
    ui_color = "#fdf1d8"

    def __init__(self, *, plan_task_id: str = "plan", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        limits = gpu_limits()
        if not limits.active:
            self.log.info("no GPU limits set (GPUFLOW_GPU_LIMITS): admitted at once")
            return {"admitted": True, "limited": False}
        first = PlanHandoff.from_xcom(context["ti"].xcom_pull(task_ids=self.plan_task_id)).choices[0]
        gpus = int(first["nodes"]) * int(first["accelerator_count"])
        try:
            limits.check_fits(first["cloud"], gpus)
        except AdmissionError as exc:
            raise AirflowFailException(str(exc)) from exc
        run = run_of(context)
        key = naming.run_key(run.dag_id, run.run_id)
        leases = Leases()
        now = datetime.now(UTC)
        leases.ask(run_key=key, dag_id=run.dag_id, run_id=run.run_id, cloud=first["cloud"], gpus=gpus, now=now)
        admission = leases.admit(key, limits, now=now)
        if admission.granted:
            self.log.info(
                "admitted: %d GPUs on %s (%d held by admitted runs)", gpus, first["cloud"], admission.gpus_held
            )
            return {"admitted": True, "limited": True, "gpus": gpus}
        self.log.info(
            "waiting for %d GPUs on %s: place %d of %d in the queue (limits %s)",
            gpus,
            first["cloud"],
            admission.place,
            admission.waiting,
            limits,
        )
        return self._wait(key)

    def _wait(self, run_key: str) -> NoReturn:
        self.defer(
            trigger=AdmissionTrigger(run_key=run_key, poll_interval_s=poll_interval_s()),
            method_name="execute_complete",
            timeout=MAX_WAIT,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        events.validate(event)
        self.log.info("admitted after waiting (%s GPUs held by admitted runs)", event.get("gpus_held"))
        return {"admitted": True, "limited": True}
