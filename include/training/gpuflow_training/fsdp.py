"""Sharded data parallel (PyTorch FSDP2, ``fully_shard``) for a model whose training state does not fit one device.

Why FSDP2: it shards each decoder layer's weights, gradients and AdamW moments across the processes (a device holds
1/N of them plus one layer gathered at a time), keeps the parameter names and the module class (so the loop, the
gradient clipping and ``save_pretrained`` stay as they are), and runs on the CPU with ``gloo``, so the tests here
exercise the same code as ``nccl`` on GPUs.

How it is chosen (``--parallel``): ``ddp`` replicates, ``fsdp`` shards, ``auto`` (the default) shards only when the
training state, 16 bytes a parameter in float32 (weights, gradients, AdamW's two moments; activations not
counted), exceeds ``DEVICE_SHARE`` of one GPU's memory. On the CPU ``auto`` never shards: processes there share
the host's memory, so sharding saves nothing. One process is never sharded.

Checkpoints stay whole: every rank takes part in gathering the full weights and optimizer state, rank 0 writes
them in the format of an unsharded run (``optimizer.pt`` keyed by parameter index, as ``optimizer.state_dict()``
of the plain model), so any world size and either mode resume them, and ``model/`` is what vLLM serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .distributed import World

MODES = ("auto", "ddp", "fsdp")
TRAINING_BYTES_PER_PARAMETER = 16  # float32 weight + gradient + AdamW exp_avg + exp_avg_sq
DEVICE_SHARE = 0.9  # of a GPU's memory the training state may take before ``auto`` shards (activations need room)


@dataclass(frozen=True)
class Layout:
    """Whether the model is sharded, and why (the model log line says it)."""

    sharded: bool
    why: str

    def describe(self) -> str:
        return f"{'fsdp' if self.sharded else 'unsharded'} ({self.why})"


def choose(mode: str, world: World, parameters: int, device: Any) -> Layout:
    """The layout ``mode`` asks for on this world and device (see the module's docstring)."""
    if world.size == 1:
        return Layout(False, "one process")
    if mode != "auto":
        return Layout(mode == "fsdp", f"--parallel {mode}")
    if device.type != "cuda":
        return Layout(False, "auto: the CPU's processes share one memory")
    import torch

    need = parameters * TRAINING_BYTES_PER_PARAMETER
    total = torch.cuda.get_device_properties(device).total_memory
    fits = need <= DEVICE_SHARE * total
    relation = "fits in" if fits else "exceeds"
    why = f"auto: training state {need / 2**30:.1f} GiB {relation} {DEVICE_SHARE:.0%} of {total / 2**30:.1f} GiB"
    return Layout(not fits, why)


def place(layout: Layout, world: World, net: Any, device: Any) -> None:
    """Move the model to ``device``: whole, or sharded layer by layer so a device never holds it all."""
    if not layout.sharded:
        net.to(device)
        return
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world.size,))
    for layer in net.model.layers:  # one unit per decoder layer: gathered for its forward and backward only
        fully_shard(layer, mesh=mesh)
    fully_shard(net, mesh=mesh)  # the rest (embeddings, final norm, the tied head)


def is_sharded(net: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(net, FSDPModule)


def full_states(net: Any, optimizer: Any | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(weights, optimizer state) of a sharded model, whole, on rank 0's CPU ({} elsewhere); (None, None) for a
    model that is not sharded (it is whole already). A collective: every rank calls it at the same step."""
    if not is_sharded(net):
        return None, None
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(net, options=options)
    if optimizer is None:
        return weights, None
    by_name = get_optimizer_state_dict(net, optimizer, options=options)
    return weights, _by_index(net, by_name) if by_name else {}


def optimizer_loader(net: Any, optimizer: Any) -> Any:
    """What loads ``optimizer.pt``'s optimizer state into ``optimizer``: its own ``load_state_dict``, or for a
    sharded model one that hands each rank its shard of the whole state."""
    if not is_sharded(net):
        return optimizer.load_state_dict

    def load(state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(net, optimizer, _by_name(net, state), options=options)

    return load


def _by_index(net: Any, state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name as the plain model's ``optimizer.state_dict()`` keys it: by the
    parameter's place in ``net.parameters()`` (the optimizer was built from it; tied weights count once)."""
    index = {name: i for i, (name, _) in enumerate(net.named_parameters())}
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": [{**group, "params": [index[n] for n in group["params"]]} for group in state["param_groups"]],
    }


def _by_name(net: Any, state: dict[str, Any]) -> dict[str, Any]:
    names = [name for name, _ in net.named_parameters()]
    return {
        "state": {names[int(i)]: value for i, value in state["state"].items()},
        "param_groups": [{**group, "params": [names[i] for i in group["params"]]} for group in state["param_groups"]],
    }
