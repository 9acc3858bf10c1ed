"""LoRA settings: the flags and environment they become, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.serving.vllm_args import vllm_args, vllm_env


def test_lora_adds_its_flags_and_the_runtime_loading_switch() -> None:
    options = VllmOptions("org/model", "chat", enable_lora=True, max_lora_rank=32, max_loras=4)

    args = vllm_args(options)
    assert args[args.index("--enable-lora") :][:5] == ["--enable-lora", "--max-lora-rank", "32", "--max-loras", "4"]
    assert vllm_env(options) == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def test_without_lora_neither_flags_nor_environment() -> None:
    options = VllmOptions("org/model", "chat", max_lora_rank=64)

    assert not [arg for arg in vllm_args(options) if "lora" in arg]
    assert vllm_env(options) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"enable_lora": "yes"}, "enable_lora"),
        ({"max_lora_rank": 12}, "max_lora_rank"),  # vLLM accepts 1, 8, 16, 32, ... only
        ({"max_lora_rank": True}, "max_lora_rank"),
        ({"max_loras": 0}, "max_loras"),
        ({"max_loras": 1.5}, "max_loras"),
    ],
)
def test_invalid_lora_setting_names_the_field_and_the_choices(change: dict[str, Any], field: str) -> None:
    lora: dict[str, Any] = {"model": "org/m", "served_model_name": "m", "enable_lora": True}
    with pytest.raises(RequestError) as error:
        VllmOptions(**(lora | change))

    assert error.value.field == field
    if field == "max_lora_rank":
        assert "8, 16, 32, 64" in str(error.value)
