"""vLLM server options, validated when a run starts, before they reach a pod.

A bad flag otherwise surfaces minutes later as a crash-looping pod; here it is a ``RequestError`` naming the
field. Pure data and checks, so the job request validates them in core; ``gpuflow.serving.vllm_args`` turns
them into the server's argument list. Quantization: vLLM reads the method from an AWQ or GPTQ checkpoint's
config and picks the fast Marlin kernels by itself, so the flag is passed only when asked for, and a request
for plain ``awq`` (or ``gptq``) becomes ``awq_marlin`` (``gptq_marlin``): the plain names force the old
kernels, about 5x slower. LoRA (``enable_lora``) lets the server load adapters at run time, without a restart:
``max_lora_rank`` is the largest adapter rank it accepts (one of the pinned vLLM's choices), ``max_loras`` how many
adapters one batch may mix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gpuflow.core import vllm_cli
from gpuflow.core.errors import RequestError

QUANTIZATION_ALIASES = {"awq": "awq_marlin", "gptq": "gptq_marlin"}
# What the pinned vLLM accepts (``vllm_cli``, generated from the vLLM of the serving image): an option the image
# refuses would crash-loop the endpoint after training was paid for.
QUANTIZATIONS = vllm_cli.QUANTIZATION_METHODS
DTYPES = vllm_cli.DTYPES
MAX_LORA_RANKS = vllm_cli.MAX_LORA_RANKS
# Flags a caller may add; the ones above have fields, and anything else (e.g. --trust-remote-code) is refused.
# Every one is a flag of the pinned ``vllm serve`` (a unit test holds them to it).
EXTRA_FLAGS = frozenset(
    {
        "max-num-seqs",
        "max-num-batched-tokens",
        "enable-prefix-caching",
        "enable-chunked-prefill",
        "enforce-eager",
        "kv-cache-dtype",
        "block-size",
        "seed",
        "revision",
        "tokenizer",
        "generation-config",
    }
)
# Flags whose value must be one of the pinned vLLM's choices.
FLAG_CHOICES = {"kv-cache-dtype": vllm_cli.KV_CACHE_DTYPES}
_NO_SPACE = re.compile(r"^\S+$")
ExtraValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class VllmOptions:
    """What the vLLM server is told. ``tensor_parallel_size`` must equal the accelerators per node."""

    model: str
    served_model_name: str
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    quantization: str | None = None
    dtype: str = "auto"
    extra_args: Mapping[str, ExtraValue] = field(default_factory=dict)
    enable_lora: bool = False
    max_lora_rank: int = 16
    max_loras: int = 1

    def __post_init__(self) -> None:
        for name in ("model", "served_model_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NO_SPACE.match(value):
                raise RequestError(name, value, "a non-empty name without spaces")
        if self.max_model_len is not None and not _positive_int(self.max_model_len):
            raise RequestError("max_model_len", self.max_model_len, "a whole number of tokens, at least 1")
        utilization = self.gpu_memory_utilization
        if isinstance(utilization, bool) or not isinstance(utilization, int | float) or not 0 < utilization <= 1:
            raise RequestError("gpu_memory_utilization", utilization, "a fraction in (0, 1], e.g. 0.9")
        if not _positive_int(self.tensor_parallel_size):
            raise RequestError("tensor_parallel_size", self.tensor_parallel_size, "the accelerators per node, >= 1")
        if self.quantization is not None:
            object.__setattr__(self, "quantization", _quantization(self.quantization))
        if self.dtype not in DTYPES:
            raise RequestError("dtype", self.dtype, f"one of {', '.join(sorted(DTYPES))}")
        _check_lora(self.enable_lora, self.max_lora_rank, self.max_loras)
        object.__setattr__(self, "extra_args", {_extra_flag(k): _extra_value(k, v) for k, v in self.extra_args.items()})
        for flag, value in self.extra_args.items():
            if flag in FLAG_CHOICES and value not in FLAG_CHOICES[flag]:
                raise RequestError(f"extra_args.{flag}", value, f"one of {', '.join(sorted(FLAG_CHOICES[flag]))}")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_lora(enable: object, max_rank: object, max_loras: object) -> None:
    if not isinstance(enable, bool):
        raise RequestError("enable_lora", enable, "True to load LoRA adapters at run time, else False")
    if isinstance(max_rank, bool) or max_rank not in MAX_LORA_RANKS:
        raise RequestError(
            "max_lora_rank",
            max_rank,
            f"one of vLLM {vllm_cli.VLLM_VERSION}'s choices, at least the largest adapter rank: "
            f"{', '.join(map(str, sorted(MAX_LORA_RANKS)))}",
        )
    if not _positive_int(max_loras):
        raise RequestError("max_loras", max_loras, "how many adapters one batch may use, a whole number >= 1")


def _quantization(value: str) -> str:
    method = QUANTIZATION_ALIASES.get(value, value)
    if method not in QUANTIZATIONS:
        raise RequestError(
            "quantization",
            value,
            f"None (read from the checkpoint) or a method vLLM {vllm_cli.VLLM_VERSION} knows: "
            f"{', '.join(sorted(QUANTIZATIONS))}",
        )
    return method


def _extra_flag(name: str) -> str:
    flag = name.removeprefix("--").replace("_", "-")
    if flag not in EXTRA_FLAGS:
        raise RequestError("extra_args", name, f"one of the allowed flags: {', '.join(sorted(EXTRA_FLAGS))}")
    return flag


def _extra_value(name: str, value: ExtraValue) -> ExtraValue:
    """True is a bare switch; numbers and words follow the flag. False has no meaning: leave the flag out."""
    if value is True:
        return value
    valid = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )
    if valid or (isinstance(value, str) and _NO_SPACE.match(value)):
        return value
    raise RequestError(f"extra_args.{name}", value, "True for a switch, or a finite number or a word without spaces")
