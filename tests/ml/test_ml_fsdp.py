"""Sharded training (FSDP2) under torchrun on this machine: 2 processes, gloo on the CPU, the small model.

What matters is that a sharded run is the same training as a replicated one and leaves the same artefacts: whole
checkpoints any world size resumes, and one Hugging Face model.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ml.mlrun import CORPUS, ML_PYTHON, ml_env, torchrun, train
from tests.ml.test_ml_training import SMALL, STEP_LINE


def _losses(log: str) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(3)) for line in log.splitlines() if (m := STEP_LINE.match(line))}


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def fsdp_output(ml_python: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """10 steps on 2 processes, sharded, checkpoints at 5 and 10: (output, log)."""
    output = tmp_path_factory.mktemp("fsdp")
    args = ["--dataset", str(CORPUS), "--output", str(output), *SMALL, "--steps", "10", "--parallel", "fsdp"]
    log = _ok(torchrun(2, *args))
    return output, log


def test_two_processes_train_sharded_and_the_loss_goes_down(fsdp_output: tuple[Path, str]) -> None:
    output, log = fsdp_output
    assert "world size 2 (gloo, rank 0), fsdp (--parallel fsdp)" in log
    assert "world size 2 (gloo, rank 1), fsdp (--parallel fsdp)" in log
    losses = _losses(log)
    assert sorted(losses) == list(range(1, 11))  # rank 0 alone logs
    assert losses[10] < losses[1]
    assert log.count("checkpoint step 10 ->") == 1
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-00000005", "step-00000010"]


def test_the_sharded_run_writes_one_whole_model_that_transformers_loads(fsdp_output: tuple[Path, str]) -> None:
    output, _ = fsdp_output
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "print('PARAMS', sum(p.numel() for p in model.parameters()))\n"
        "ids = tok('Once upon a time', return_tensors='pt').input_ids\n"
        "print('NEW', model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] - ids.shape[1])\n"
        "opt = torch.load(sys.argv[2], weights_only=False)['optimizer']\n"
        "print('OPTIMIZER', sorted(opt['state']) == list(range(len(list(model.parameters())))))\n"
    )
    model, optimizer = output / "model", output / "checkpoints" / "step-00000010" / "optimizer.pt"
    result = subprocess.run(
        [str(ML_PYTHON), "-c", code, str(model), str(optimizer)],
        env=ml_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stdout = _ok(result)
    assert "PARAMS 102720" in stdout  # the whole model, not a shard
    assert "NEW 4" in stdout
    assert "OPTIMIZER True" in stdout  # keyed by parameter index, as an unsharded run writes it


def test_a_sharded_checkpoint_resumes_in_one_process(fsdp_output: tuple[Path, str], tmp_path: Path) -> None:
    output = tmp_path / "out"
    shutil.copytree(fsdp_output[0], output)
    log = _ok(train("--dataset", str(CORPUS), "--output", str(output), *SMALL, "--steps", "12"))
    assert "resuming from checkpoints/step-00000010 (step 10," in log
    assert "world size 1, unsharded (one process)" in log
    assert sorted(_losses(log)) == [11, 12]
    assert (output / "model" / "COMPLETE").is_file()


def test_sharded_and_replicated_runs_resume_the_same_checkpoint_to_the_same_losses(
    fsdp_output: tuple[Path, str], tmp_path: Path
) -> None:
    """The optimizer state reaches every shard intact: from one checkpoint, FSDP and DDP take the same steps."""
    runs = {}
    for parallel in ("fsdp", "ddp"):
        output = tmp_path / parallel
        shutil.copytree(fsdp_output[0], output)
        args = ["--dataset", str(CORPUS), "--output", str(output), *SMALL, "--steps", "12", "--parallel", parallel]
        log = _ok(torchrun(2, *args))
        assert "resuming from checkpoints/step-00000010 (step 10," in log
        runs[parallel] = _losses(log)
    assert sorted(runs["fsdp"]) == [11, 12]
    assert runs["fsdp"] == pytest.approx(runs["ddp"], abs=2e-4)
