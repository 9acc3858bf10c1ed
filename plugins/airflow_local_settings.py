"""Airflow's local settings, imported by every Airflow process at start (``plugins/`` is on its path).

The Airflow processes that fork a process per task or per DAG parse import the DAG files' libraries once, before
they first fork, instead of in every fork (``gpuflow.preload`` says why and what it saves; ``GPUFLOW_PRELOAD=off``
turns it off). Nothing else is set here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gpuflow.core import settings
from gpuflow.preload import import_before_first_fork

# `airflow scheduler` (its LocalExecutor's workers fork each task), `airflow dag-processor` (a fork per parse) and
# `airflow celery worker` (its pool's processes fork each task).
FORKING_COMMANDS = ("scheduler", "dag-processor", "celery")


def _dags_folder() -> Path:
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder"))


if sys.argv[1:2] and sys.argv[1] in FORKING_COMMANDS and settings.preload():
    import_before_first_fork(_dags_folder)

__all__: list[str] = []  # no setting or policy of Airflow's is overridden
