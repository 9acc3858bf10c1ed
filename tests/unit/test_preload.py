"""``gpuflow.preload``: what the DAG files import is found without running them, imported once, and inherited by
every process forked afterwards (the Airflow side is checked on a running stack in tests/live/test_preload_live.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpuflow.preload import dag_imports, preload

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_the_top_level_imports_of_every_dag_file_are_found_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text(
        "from __future__ import annotations\nimport json, colorsys\nfrom email.mime import text\n"
        "from . import sibling\n\ndef task():\n    import wave\n"
    )
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "two.py").write_text("import json\nfrom html import parser\n")
    (tmp_path / "broken.py").write_text("import json\ndef (:\n")
    (tmp_path / "notes.txt").write_text("import wave\n")

    assert dag_imports(tmp_path) == ["colorsys", "email.mime", "html", "json"]


def test_the_shipped_dags_import_the_pipeline_and_the_sdk() -> None:
    assert {"airflow.sdk", "gpuflow.pipeline", "gpuflow.params"} <= set(dag_imports(DAGS))


def test_a_module_that_fails_to_import_is_logged_and_the_rest_are_imported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "dag.py").write_text("import json\nimport gpuflow_no_such_module\n")

    with caplog.at_level(logging.INFO, logger="gpuflow.preload"):
        assert preload(tmp_path) == ["json"]

    assert "could not import gpuflow_no_such_module" in caplog.text
    assert "imported 1 modules of the DAG files" in caplog.text


def test_a_process_forked_after_registration_inherits_what_the_dag_files_import(tmp_path: Path) -> None:
    (tmp_path / "dag.py").write_text("import colorsys\n")
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from gpuflow.preload import import_before_first_fork

        import_before_first_fork(lambda: Path({str(tmp_path)!r}))
        print("before fork:", "colorsys" in sys.modules, flush=True)
        pid = os.fork()
        if pid == 0:
            print("child:", "colorsys" in sys.modules, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    assert out.splitlines() == ["before fork: False", "child: True"]
