"""Checkpoints under ``OUTPUT_URI/checkpoints/step-XXXXXXXX/``: everything needed to continue, published atomically.

Why each checkpoint is a full HF model directory (weights + config + tokenizer) plus the trainer's state: a
lost run resumes from it alone, and any checkpoint can also be loaded or served as it is. Contents:
``model.safetensors``, ``config.json``, tokenizer files, ``optimizer.pt`` (optimizer + LR schedule),
``rng.pt`` (torch CPU/CUDA and Python RNG), ``trainer_state.json`` (step, tokens seen, settings) and the
``COMPLETE`` marker written last (see storage.py). Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputError
from .storage import Store
from .tokenizer import save_tokenizer

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8})$")


def name_for(step: int) -> str:
    return f"{CHECKPOINTS}/step-{step:08d}"


@dataclass(frozen=True)
class Resumed:
    """A loaded checkpoint: where it was, the step it ended on and its local directory."""

    step: int
    tokens_seen: int
    elapsed_s: float
    local_dir: Path
    name: str


def complete_steps(store: Store) -> list[int]:
    """Steps of the checkpoints whose marker exists, oldest first; half-written ones are ignored."""
    steps = []
    for entry in store.list_dirs(CHECKPOINTS):
        match = _NAME.match(entry)
        if match and store.is_complete(f"{CHECKPOINTS}/{entry}"):
            steps.append(int(match.group(1)))
    return sorted(steps)


def clear_staging(store: Store) -> None:
    """Remove local staging dirs a killed run left behind (they never got their marker)."""
    if store.local:
        for entry in store.list_dirs(CHECKPOINTS):
            if entry.startswith(".staging-"):
                shutil.rmtree(store.path(CHECKPOINTS, entry), ignore_errors=True)


def save(
    store: Store,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    tokens_seen: int,
    elapsed_s: float,
    settings: dict[str, Any],
    keep: int,
    full_states: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None),
) -> str:
    """Write and publish the checkpoint of ``step``, then drop all but the newest ``keep``. ``full_states``: the
    whole weights and optimizer state of a sharded model (``fsdp.full_states``); None takes the model's own."""
    import torch

    name = name_for(step)
    staged = store.staging_dir(name)
    try:
        weights, optimizer_state = full_states
        model.save_pretrained(staged, safe_serialization=True, state_dict=weights)
        save_tokenizer(tokenizer, staged)
        if optimizer_state is None:
            optimizer_state = optimizer.state_dict()
        torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict()}, staged / "optimizer.pt")
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, staged / "rng.pt")
        state = {"step": step, "tokens_seen": tokens_seen, "elapsed_s": elapsed_s, "settings": settings}
        (staged / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        target = store.publish(staged, name)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise OutputError(f"cannot write checkpoint {name} under {store.uri!r}: {exc}") from exc
    for old in complete_steps(store)[:-keep]:
        store.remove(name_for(old))
    return target


def latest(store: Store) -> Resumed | None:
    """The newest complete checkpoint, fetched to a local dir, or None on a fresh run."""
    steps = complete_steps(store)
    if not steps:
        return None
    name = name_for(steps[-1])
    local = store.fetch(name)
    state = json.loads((local / STATE_FILE).read_text())
    return Resumed(
        step=int(state["step"]),
        tokens_seen=int(state["tokens_seen"]),
        elapsed_s=float(state.get("elapsed_s", 0.0)),
        local_dir=local,
        name=name,
    )


def restore_training_state(
    resumed: Resumed, optimizer: Any, scheduler: Any, load_optimizer: Callable[[Any], None] | None = None
) -> None:
    """Optimizer, LR schedule and RNG as they were when the checkpoint was written; ``load_optimizer`` loads the
    optimizer's state when ``optimizer.load_state_dict`` cannot (a sharded model: ``fsdp.optimizer_loader``)."""
    import torch

    opt = torch.load(resumed.local_dir / "optimizer.pt", map_location="cpu", weights_only=False)
    (load_optimizer or optimizer.load_state_dict)(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    rng = torch.load(resumed.local_dir / "rng.pt", map_location="cpu", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
