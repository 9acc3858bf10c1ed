"""``RunWatcher``: fail the run when any pipeline task failed, even though the teardown succeeded.

A teardown with ``on_failure_fail_dagrun=True`` becomes the run's only leaf, so its success would mark a run
successful whose training failed. The watcher (the pattern of Airflow's own system tests) is downstream of
every work task, runs only when one of them failed, and fails.
"""

from __future__ import annotations

from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context, TriggerRule
from airflow.sdk.exceptions import AirflowFailException


class RunWatcher(BaseOperator):
    ui_color = "#f6dede"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trigger_rule=TriggerRule.ONE_FAILED, **kwargs)

    def execute(self, context: Context) -> NoReturn:
        raise AirflowFailException("a pipeline task failed (see the tasks marked failed); the run fails with it")
