"""The vLLM server's argument list and environment, built from validated ``VllmOptions``
(``gpuflow.core.vllm_options``)."""

from __future__ import annotations

from gpuflow.core.vllm_options import VllmOptions

PORT = 8000
# Adds /v1/load_lora_adapter and /v1/unload_lora_adapter to the server (vllm/entrypoints/serve/lora/api_router.py);
# vllm/envs.py reads "1" or "true", in any case.
RUNTIME_LORA_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def vllm_args(options: VllmOptions, *, model_path: str | None = None) -> list[str]:
    """The server's argument list; ``model_path`` replaces ``options.model`` when the weights were copied locally."""
    args = ["--model", model_path or options.model, "--served-model-name", options.served_model_name]
    if options.max_model_len is not None:
        args += ["--max-model-len", str(options.max_model_len)]
    args += ["--gpu-memory-utilization", str(options.gpu_memory_utilization)]
    args += ["--tensor-parallel-size", str(options.tensor_parallel_size)]
    if options.quantization is not None:
        args += ["--quantization", options.quantization]
    if options.dtype != "auto":
        args += ["--dtype", options.dtype]
    if options.enable_lora:
        args += ["--enable-lora", "--max-lora-rank", str(options.max_lora_rank), "--max-loras", str(options.max_loras)]
    for flag, value in options.extra_args.items():
        args += [f"--{flag}"] if value is True else [f"--{flag}", str(value)]
    return [*args, "--host", "0.0.0.0", "--port", str(PORT)]


def vllm_env(options: VllmOptions) -> dict[str, str]:
    """The server's own environment variables: run-time adapter loading when LoRA is on."""
    return dict(RUNTIME_LORA_ENV) if options.enable_lora else {}
