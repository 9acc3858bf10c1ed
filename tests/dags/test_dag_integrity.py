"""Every DAG in dags/ parses, is well described, retries its cloud work, and is cheap to parse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(str(p) for p in (ROOT / "dags").glob("*.py"))
BAD_DAGS = ROOT / "tests" / "fixtures" / "bad_dags"
# The DAG processor re-parses every file every few seconds; its own top-level work must stay tiny. Computing is
# measured in CPU seconds, which a busy machine does not inflate; waiting (a sleep, a slow disk or service) only
# shows in wall seconds, held to a looser limit that the load of a test run does not reach.
MAX_IMPORT_CPU_SECONDS = 0.3
MAX_IMPORT_WALL_SECONDS = 1.0


def probe(paths: list[str]) -> dict[str, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.dag_import_probe", *paths],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    report: dict[str, dict[str, object]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def import_problems(report: dict[str, dict[str, object]]) -> dict[str, str]:
    problems = {}
    for path, outcome in report.items():
        wall, cpu = outcome["seconds"], outcome["cpu_seconds"]
        assert isinstance(wall, float)
        assert isinstance(cpu, float)
        if outcome["error"]:
            problems[Path(path).name] = str(outcome["error"])
        elif cpu > MAX_IMPORT_CPU_SECONDS:
            problems[Path(path).name] = f"import took {cpu:.2f} s of CPU (limit {MAX_IMPORT_CPU_SECONDS} s)"
        elif wall > MAX_IMPORT_WALL_SECONDS:
            problems[Path(path).name] = f"import took {wall:.2f} s (limit {MAX_IMPORT_WALL_SECONDS} s)"
    return problems


@pytest.fixture(scope="module")
def problems() -> dict[str, str]:
    """One probe run (a fresh interpreter) for the real DAG files and the bad fixtures together."""
    bad = [str(BAD_DAGS / "network_at_import.py"), str(BAD_DAGS / "slow_import.py")]
    return import_problems(probe([*DAG_FILES, *bad]))


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_folder_has_dags() -> None:
    assert DAG_FILES


def test_every_dag_file_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert dagbag.dags


def test_every_dag_has_tags_and_an_owner(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert all(task.owner not in ("", "airflow") for task in dag.tasks), f"{dag_id} has no owner"


def test_every_task_retries(dagbag: DagBag) -> None:
    """Cloud calls fail transiently; user errors raise AirflowFailException, which skips the retries."""
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            assert (task.retries or 0) >= 1, f"{dag_id}.{task.task_id} has retries={task.retries}"


def test_dag_files_import_fast_and_offline(problems: dict[str, str]) -> None:
    assert {name: why for name, why in problems.items() if name in {Path(p).name for p in DAG_FILES}} == {}


def test_probe_catches_a_network_call_at_import(problems: dict[str, str]) -> None:
    assert "network call at DAG import time" in problems["network_at_import.py"]


def test_probe_catches_slow_top_level_work(problems: dict[str, str]) -> None:
    assert "import took" in problems["slow_import.py"]
