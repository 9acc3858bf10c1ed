"""Import what the DAG files import once, in the Airflow processes that fork, so the processes they fork inherit it.

Every task process parses its DAG file again when it starts, and the DAG processor parses each file again every
``min_file_process_interval``, each time in a fresh fork. The heavy part of ``gpu_train_and_serve.py`` is not the
file but its libraries (the cncf-kubernetes pod operator pulls in both Kubernetes clients): measured 4-5 s of every
task's start on a two-core machine, and 9-10 s of every parse of the two pipeline DAGs. Airflow pre-imports only the
``airflow.*`` modules a DAG file names (``[dag_processor] parsing_pre_import_modules``), which misses them.

``import_before_first_fork`` makes the process import the DAG files' top-level imports just before it first forks
(the scheduler's LocalExecutor workers, the DAG processor's parsers, a Celery worker's pool), when Airflow is fully
initialised. The DAG files themselves are still parsed each time, so a DAG edit shows at once; a change to
``plugins/gpuflow`` needs those processes restarted, as Airflow asks of any plugin change. ``GPUFLOW_PRELOAD=off``
turns it off (``plugins/airflow_local_settings.py``).
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def dag_imports(dags_folder: Path) -> list[str]:
    """The modules the DAG files of ``dags_folder`` import at top level, sorted; a file that does not parse is
    skipped (the DAG processor reports it)."""
    modules: set[str] = set()
    for path in sorted(dags_folder.rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for statement in tree.body:
            if isinstance(statement, ast.Import):
                modules.update(alias.name for alias in statement.names)
            elif isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
                modules.add(statement.module)
    modules.discard("__future__")
    return sorted(modules)


def preload(dags_folder: Path) -> list[str]:
    """Import every module ``dag_imports`` finds; one that fails is logged and left for the DAG processor to report
    with its DAG file. Returns the modules imported."""
    started, imported = time.monotonic(), []
    for module in dag_imports(dags_folder):
        try:
            importlib.import_module(module)
        except Exception as error:  # a broken import must not stop the scheduler: the DAG's own parse reports it
            log.warning(
                "gpuflow preload: could not import %s (a DAG file in %s imports it): %s", module, dags_folder, error
            )
        else:
            imported.append(module)
    log.info(
        "gpuflow preload: imported %d modules of the DAG files in %s in %.1f s, before this process (pid %d) forks",
        len(imported),
        dags_folder,
        time.monotonic() - started,
        os.getpid(),
    )
    return imported


def import_before_first_fork(dags_folder: Callable[[], Path]) -> None:
    """Run ``preload`` once, just before this process first forks; ``dags_folder`` is read then."""
    done = False

    def before_fork() -> None:
        nonlocal done
        if not done:
            done = True
            preload(dags_folder())

    os.register_at_fork(before=before_fork)
