"""``RunWatcher``: the run's verdict, after its work tasks, whatever ended them.

A teardown with ``on_failure_fail_dagrun=True`` becomes the run's only leaf, so its success would mark a run
successful whose training failed; the watcher (the pattern of Airflow's own system tests) fails the run instead.
It is itself a teardown, without setups: when a person marks a run failed, Airflow 3.3 fails the running task and
*skips* every pending task that is not a teardown, the watcher too if it were a plain task, and the run would end
``success`` once the teardowns had run (``airflow.api.common.mark_tasks._set_dag_run_terminal_state``). As a
teardown it still runs, after the cleanup's peers, reads the work tasks' states and fails the run, naming what
stopped it. It also gives back the GPU lease of a run that never asked for a pool (``gpuflow.core.admission``),
which no teardown will.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gpuflow.core import naming
from gpuflow.state.admission import Leases

FAILED = frozenset({"failed", "upstream_failed"})
CREATE_TASK = "create_node_pool"  # the setup: it only asks for a pool, so if it did not succeed none exists


class RunWatcher(BaseOperator):
    """Fail when a work task failed (or was marked failed); succeed when all of them did their work."""

    ui_color = "#f6dede"

    def execute(self, context: Context) -> None:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        run = context["dag_run"]
        work = sorted(self.upstream_task_ids)
        asked = [*work, CREATE_TASK]
        found = RuntimeTaskInstance.get_task_states(dag_id=run.dag_id, run_ids=[run.run_id], task_ids=asked)
        # The SDK's TaskInstanceState: its str() is not its value.
        states = {task: str(getattr(state, "value", state)) for task, state in found.get(run.run_id, {}).items()}
        # No pool was ever asked for (a plan refused, a run stopped while it waited for GPUs), so no teardown will
        # give its GPU lease back: the lease goes now, not at the janitor's next sweep.
        never_asked = states.pop(CREATE_TASK, None) != "success"
        if never_asked and Leases().release(naming.run_key(run.dag_id, run.run_id), now=datetime.now(UTC)):
            self.log.info("GPU lease released: the run never asked for a node pool")
        verdict = run_verdict(states)
        if verdict:
            self.log.error("%s", verdict)  # a line of its own: the UI shows it above the traceback
            raise AirflowFailException(verdict)
        self.log.info("every pipeline task did its work: %s", ", ".join(work))


def run_verdict(states: dict[str, str]) -> str | None:
    """Why the run fails, from its work tasks' states; None when none failed. Tasks a person's "mark failed"
    skipped say the run was stopped, rather than broken by the first failed task."""
    failed = sorted(task for task, state in states.items() if state in FAILED)
    if not failed:
        return None
    skipped = sorted(task for task, state in states.items() if state == "skipped")
    if skipped:
        return (
            f"the run was stopped: {', '.join(failed)} ended failed and {', '.join(skipped)} never ran (a run or task "
            "marked failed through the UI or the REST API ends this way); its cleanup ran, and the run fails"
        )
    return f"a pipeline task failed ({', '.join(failed)}; see its log); the run fails with it"
