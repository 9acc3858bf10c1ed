"""The trainer's adapter mode end to end in ``.venv-ml``: a PEFT-format LoRA adapter, resume, and clear refusals."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tests.ml.mlrun import ADAPTER_RANK, CORPUS, ML_PYTHON, SESSION_ADAPTER_ARGS, killed_after_checkpoint, train

PEFT_LAYER = "base_model.model.model.layers.{}.self_attn.{}.lora_{}.weight"


def _tensors(path: Path) -> dict[str, Any]:
    """A safetensors file's header (name -> dtype, shape, offsets), read without torch: .venv has none."""
    with path.open("rb") as file:
        (size,) = struct.unpack("<Q", file.read(8))
        header: dict[str, Any] = json.loads(file.read(size))
    header.pop("__metadata__", None)
    return header


def test_adapter_mode_publishes_a_peft_adapter_instead_of_a_model(trained_output: Path, adapter_output: Path) -> None:
    adapter = adapter_output / "adapter"
    assert not (adapter_output / "model").exists()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert (config["r"], config["lora_alpha"], config["bias"]) == (ADAPTER_RANK, 2 * ADAPTER_RANK, "none")
    assert config["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert config["base_model_name_or_path"] == str(trained_output / "model")

    base = json.loads((trained_output / "model" / "config.json").read_text())
    hidden, layers = base["hidden_size"], base["num_hidden_layers"]
    tensors = _tensors(adapter / "adapter_model.safetensors")
    assert len(tensors) == layers * 4 * 2  # A and B of four projections per layer, nothing of the base
    assert tensors[PEFT_LAYER.format(0, "q_proj", "A")]["shape"] == [ADAPTER_RANK, hidden]
    assert tensors[PEFT_LAYER.format(layers - 1, "o_proj", "B")]["shape"] == [hidden, ADAPTER_RANK]

    log = (adapter_output / "train.log").read_text()
    assert f"adapter: LoRA rank {ADAPTER_RANK} on {layers * 4} projections" in log
    checkpoint = adapter_output / "checkpoints" / "step-00000010"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert not (checkpoint / "model.safetensors").exists()  # a checkpoint holds the adapter, not the frozen base


def test_an_adapter_run_killed_after_a_checkpoint_resumes_to_the_same_adapter(
    trained_output: Path, adapter_output: Path, tmp_path: Path
) -> None:
    """Same steps, same data order, same optimizer state: the resumed run ends where the uninterrupted one did."""
    args = ["--dataset", str(CORPUS), "--output", str(tmp_path), "--base-model", str(trained_output / "model")]
    killed_after_checkpoint(ML_PYTHON, ["-m", "gpuflow_training", *args, *SESSION_ADAPTER_ARGS], step=5)

    second = train(*args, *SESSION_ADAPTER_ARGS)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from checkpoints/step-00000005 (step 5," in second.stdout
    assert "step 10/10 " in second.stdout
    resumed = (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes()
    assert resumed == (adapter_output / "adapter" / "adapter_model.safetensors").read_bytes()


def test_adapter_rank_without_a_base_model_is_a_usage_error_naming_the_fix(tmp_path: Path) -> None:
    result = train("--dataset", str(CORPUS), "--output", str(tmp_path), "--adapter-rank", "8")

    assert result.returncode == 2
    assert "adapter_rank 8 needs a base model to adapt: pass --base-model URI" in result.stderr


def test_adapter_rank_from_the_environment(tmp_path: Path) -> None:
    result = train("--dataset", str(CORPUS), "--output", str(tmp_path), env={"GPUFLOW_TRAIN_ADAPTER_RANK": "-1"})

    assert result.returncode == 2
    assert "adapter_rank must be 0 (train the whole model) or a LoRA rank >= 1, got -1" in result.stderr


def test_an_adapter_run_configured_by_the_environment_reads_the_base_model_uri_as_text(tmp_path: Path) -> None:
    """The pipeline's training pod gives both as env variables (``gpuflow.core.job.training_env``)."""
    env = {"GPUFLOW_TRAIN_ADAPTER_RANK": "4", "BASE_MODEL_URI": str(tmp_path / "no-model")}
    result = train("--dataset", str(CORPUS), "--output", str(tmp_path / "out"), env=env)

    assert result.returncode == 5, result.stderr  # the base model's exit code: the URI was taken as a URI
    assert "no-model" in result.stderr
