"""LoRA adapters: train low-rank updates of a frozen base model's attention projections, saved in PEFT's format.

Why an adapter: a vLLM server started with ``--enable-lora`` loads one at run time (``/v1/load_lora_adapter``),
so a fine-tune reaches the endpoint without a new pod or pool, and several share one base model's GPUs.
Why write PEFT's format by hand: it is what vLLM reads (``vllm/lora/peft_helper.py`` reads
``adapter_config.json``; ``vllm/lora/lora_model.py`` reads ``adapter_model.safetensors``), and two files do not
justify the ``peft`` dependency. The weights follow PEFT's names, e.g.
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` (``rank x in``) and ``...lora_B.weight``
(``out x rank``); the update is ``B @ A * alpha / rank``, with B starting at zero so step 0 is the base model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINAL = "adapter"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class AdapterSpec:
    """What the adapter is: its rank, its scale (``alpha / rank``) and the base model it adapts."""

    rank: int
    base_model: str

    @property
    def alpha(self) -> int:
        """Twice the rank, a common choice: the scale stays 2 whatever the rank."""
        return 2 * self.rank

    def peft_config(self) -> dict[str, Any]:
        return {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": self.base_model,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": 0.0,
            "target_modules": list(TARGETS),
            "bias": "none",
            "fan_in_fan_out": False,
            "inference_mode": True,
            "init_lora_weights": True,
            "use_rslora": False,
            "use_dora": False,
            "modules_to_save": None,
        }


def _lora_linear_class() -> Any:
    """Built on first use, so importing this module does not import torch (cli.py validates settings first)."""
    import torch

    class LoraLinear(torch.nn.Module):  # type: ignore[misc]  # torch is Any where mypy runs (no torch in .venv)
        """A frozen linear layer plus its trainable low-rank update."""

        def __init__(self, base: Any, rank: int, scale: float) -> None:
            super().__init__()
            self.base = base
            self.scale = scale
            self.lora_A = torch.nn.Linear(base.in_features, rank, bias=False, dtype=base.weight.dtype)
            self.lora_B = torch.nn.Linear(rank, base.out_features, bias=False, dtype=base.weight.dtype)
            torch.nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # PEFT's initialisation
            torch.nn.init.zeros_(self.lora_B.weight)

        def forward(self, x: Any) -> Any:
            return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale

    return LoraLinear


def attach(net: Any, spec: AdapterSpec, seed: int) -> list[str]:
    """Freeze ``net`` and wrap each attention projection in a LoRA layer, initialised from ``seed`` (so a run is
    repeatable); returns the wrapped modules' names."""
    import torch

    torch.manual_seed(seed)
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    lora_linear = _lora_linear_class()
    wrapped = []
    for name, module in list(net.named_modules()):
        for target in TARGETS:
            base = getattr(module, target, None)
            if base is not None and not isinstance(base, lora_linear) and hasattr(base, "in_features"):
                setattr(module, target, lora_linear(base, spec.rank, spec.alpha / spec.rank))
                wrapped.append(f"{name}.{target}")
    if not wrapped:
        raise ValueError(f"no attention projection named {', '.join(TARGETS)}: not a Llama-architecture model")
    return wrapped


def state(net: Any) -> dict[str, Any]:
    """The adapter's tensors under PEFT's names (the frozen base is not part of it)."""
    return {
        f"{PEFT_PREFIX}{name}": tensor.detach().contiguous().cpu()
        for name, tensor in net.state_dict().items()
        if ".lora_A." in name or ".lora_B." in name
    }


def load(net: Any, directory: Path) -> None:
    """Put a saved adapter's tensors back into ``net`` (after ``attach``): how a checkpoint resumes."""
    from safetensors.torch import load_file

    names = {f"{PEFT_PREFIX}{name}": name for name in net.state_dict() if ".lora_A." in name or ".lora_B." in name}
    saved = load_file(str(directory / WEIGHTS_FILE))
    missing = sorted(set(names) - set(saved))
    if missing:
        raise ValueError(f"{directory / WEIGHTS_FILE} lacks {len(missing)} tensors, e.g. {missing[0]}")
    net.load_state_dict({names[key]: saved[key] for key in names}, strict=False)


class Adapter:
    """The model as a checkpoint or the final artefact sees it: ``save_pretrained`` writes the adapter alone."""

    def __init__(self, net: Any, spec: AdapterSpec) -> None:
        self.net = net
        self.spec = spec

    def save_pretrained(
        self, directory: Path | str, safe_serialization: bool = True, state_dict: dict[str, Any] | None = None
    ) -> None:
        """As a model's; ``state_dict`` is for sharded models, which an adapter never is (config.py)."""
        from safetensors.torch import save_file

        if state_dict is not None:
            raise ValueError("an adapter is saved from its own layers, not from a gathered state dict")

        target = Path(directory)
        save_file(state(self.net), str(target / WEIGHTS_FILE), metadata={"format": "pt"})
        (target / CONFIG_FILE).write_text(json.dumps(self.spec.peft_config(), indent=2) + "\n")


def trainable(net: Any) -> list[Any]:
    """The parameters the optimizer updates: all of them for a full model, the LoRA ones for an adapter."""
    return [parameter for parameter in net.parameters() if parameter.requires_grad]
