"""The training loop: resume or start, train, checkpoint every N steps, publish the final model.

Why the order of checks: the dataset and the output are checked before the tokenizer or the model is built,
so a wrong URI fails in seconds with a message naming it, not after the (possibly paid-for) GPU has warmed up.
A SIGTERM (spot reclaim, pod deletion) finishes the current step, writes a checkpoint and exits 143, so a
preempted node loses at most one step when the grace period allows the write, and at most N steps otherwise.
``progress.json`` follows every checkpoint (see progress.py), so whoever restarts the run knows where it stands.
Under torchrun every process trains its share of each step's rows (distributed.py); rank 0 alone writes.
With ``adapter_rank`` the base model is frozen and a LoRA adapter is trained and published instead (adapter.py).
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import replace
from datetime import timedelta
from types import FrameType
from typing import Any

from . import adapter, checkpoint, data, distributed, fsdp, model, storage, tokenizer
from .config import TrainConfig
from .errors import EXIT_OK, EXIT_PREEMPTED, BaseModelError
from .progress import ProgressFile

FINAL = "model"
SUMMARY_FILE = "gpuflow_training.json"


def log(message: str) -> None:
    """One line, flushed at once: the pod log is how progress is watched."""
    print(message, flush=True)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(max(seconds, 0.0))))


class _StopFlag:
    """Set by SIGTERM; the loop polls it after each step, checkpoints that step and says why it stops.

    The handler only records the signal: a handler that printed could interrupt the loop's own print, and the
    reentrant write to stdout raises a RuntimeError in the loop (Python's io docs, "Reentrancy"), losing the
    checkpoint the signal asks for.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    @property
    def stop(self) -> bool:
        return self.signum is not None


def _schedule(config: TrainConfig) -> Any:
    """Linear warm-up, then cosine decay to 10% of ``lr``."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _device(config: TrainConfig, world: distributed.World) -> Any:
    """The configured device; under torchrun, each process on a node takes the GPU of its local rank."""
    import torch

    device = torch.device(_device_kind(config) if config.device == "auto" else config.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device


def _device_kind(config: TrainConfig) -> str:
    import torch

    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device.split(":")[0]


def _final(config: TrainConfig) -> str:
    return adapter.FINAL if config.adapter_rank else FINAL


def _build(config: TrainConfig, text: str, resumed: checkpoint.Resumed | None) -> tuple[Any, Any]:
    """(model, tokenizer): from the checkpoint, else the base model, else new from sizes."""
    if config.adapter_rank:
        return _build_adapted(config, resumed)
    if resumed is not None:
        return model.load_model(str(resumed.local_dir)), tokenizer.load_tokenizer(str(resumed.local_dir))
    if config.base_model:
        try:
            local = storage.fetch_dir(config.base_model)
            return model.load_model(str(local)), tokenizer.load_tokenizer(str(local))
        except Exception as exc:
            raise BaseModelError(
                f"cannot load base model {config.base_model!r}: {exc}; it must be a Hugging "
                "Face-format directory (config.json, weights, tokenizer files)"
            ) from exc
    tok = tokenizer.train_tokenizer(text, config.vocab_size)
    log(f"tokenizer: byte-level BPE trained on the dataset, vocab {len(tok)}")
    return model.new_model(config, tok), tok


def _artefact(config: TrainConfig, net: Any) -> Any:
    """What checkpoints and the final publish save: the model, or in adapter mode the adapter alone."""
    if config.adapter_rank:
        return adapter.Adapter(net, adapter.AdapterSpec(config.adapter_rank, config.base_model or ""))
    return net


def _build_adapted(config: TrainConfig, resumed: checkpoint.Resumed | None) -> tuple[Any, Any]:
    """The frozen base model with LoRA layers: new ones, or the checkpoint's (which holds the adapter alone)."""
    assert config.base_model is not None  # config.py refuses an adapter without a base model
    try:
        net, tok = _build(replace(config, adapter_rank=0), "", None)
        wrapped = adapter.attach(net, adapter.AdapterSpec(config.adapter_rank, config.base_model), config.seed)
    except ValueError as exc:
        raise BaseModelError(f"cannot add a LoRA adapter to base model {config.base_model!r}: {exc}") from exc
    if resumed is not None:
        adapter.load(net, resumed.local_dir)
    trained = sum(int(p.numel()) for p in adapter.trainable(net))
    log(f"adapter: LoRA rank {config.adapter_rank} on {len(wrapped)} projections, {trained:,} trainable parameters")
    return net, tok


def _already_done(store: storage.Store, config: TrainConfig) -> bool:
    if not store.is_complete(_final(config)):
        return False
    try:
        summary = json.loads(store.fs.cat_file(store.path(_final(config), SUMMARY_FILE)))
    except FileNotFoundError:
        return False
    return int(summary.get("step", 0)) >= config.steps


def run(config: TrainConfig) -> int:
    started = time.monotonic()
    log(f"gpuflow_training: dataset {config.dataset_uri} -> output {config.output_uri}")
    text = data.read_text(config.dataset_uri)  # before torch loads: a bad URI fails in about a second
    store = storage.Store(config.output_uri)
    store.check_writable()  # on every rank: a probe of its own name, so they do not race
    world = distributed.join(_device_kind(config))
    try:
        return _run(config, text, store, world, started)
    finally:
        distributed.leave(world)


def _run(config: TrainConfig, text: str, store: storage.Store, world: distributed.World, started: float) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per event in the pod log, no carriage-return bars
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if _already_done(store, config):
        log(f"final {_final(config)} already at {store.path(_final(config))} for {config.steps} steps: nothing to do")
        return EXIT_OK
    if world.is_main:
        checkpoint.clear_staging(store)
    resumed = checkpoint.latest(store)
    progress = ProgressFile.start(store, config.steps, config.checkpoint_every, resuming=resumed is not None)
    if resumed is not None:
        log(f"resuming from {resumed.name} (step {resumed.step}, {resumed.tokens_seen} tokens seen)")
        if world.is_main:  # counts this restart even if it is preempted before a checkpoint
            progress.write(resumed.step, resumed.name)
    net, tok = _build(config, text, resumed)
    for warning in model.serving_warnings(net):
        log(f"warning: {warning}")
    global_batch = config.batch_size * world.size
    blocks = data.make_blocks(text, tok, config.seq_len, config.seed, global_batch, config.dataset_uri)
    device = _device(config, world)
    layout = fsdp.choose(config.parallel, world, model.count_parameters(net), device)
    fsdp.place(layout, world, net, device)
    net.train()
    log(
        f"model: llama, {model.count_parameters(net):,} parameters, hidden {net.config.hidden_size}, "
        f"layers {net.config.num_hidden_layers}, heads {net.config.num_attention_heads}, vocab {len(tok)}; "
        f"data: {blocks.count} blocks of {config.seq_len} tokens, {global_batch} per step; "
        f"device {device}, threads {torch.get_num_threads()}, {world.describe()}, {layout.describe()}"
    )

    optimizer = torch.optim.AdamW(
        adapter.trainable(net), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step, tokens_seen, elapsed_before = 0, 0, 0.0
    if resumed is not None:
        checkpoint.restore_training_state(resumed, optimizer, scheduler, fsdp.optimizer_loader(net, optimizer))
        step, tokens_seen, elapsed_before = resumed.step, resumed.tokens_seen, resumed.elapsed_s

    stop = _StopFlag()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        step = _loop(
            config,
            world,
            net,
            tok,
            blocks,
            optimizer,
            scheduler,
            store,
            progress,
            device,
            step,
            tokens_seen,
            elapsed_before,
            stop,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    # Decided together: a rank that stopped alone would leave the others waiting in the gather below.
    if distributed.any_rank(world, stop.stop, device) or step < config.steps:  # a signal here or on another rank
        return EXIT_PREEMPTED
    weights, _ = fsdp.full_states(net)  # every rank, for a sharded model
    if not world.is_main:
        log(f"rank {world.rank}: done at step {step}")
        return EXIT_OK
    target = _publish_final(store, _artefact(config, net), tok, config, step, weights)
    progress.write(step, checkpoint.name_for(step), finished=True)  # the loop always checkpoints its last step
    log(f"final {_final(config)} at {target} (step {step}); total {_clock(time.monotonic() - started)}")
    return EXIT_OK


def _loop(
    config: TrainConfig,
    world: distributed.World,
    net: Any,
    tok: Any,
    blocks: data.Blocks,
    optimizer: Any,
    scheduler: Any,
    store: storage.Store,
    progress: ProgressFile,
    device: Any,
    step: int,
    tokens_seen: int,
    elapsed_before: float,
    stop: _StopFlag,
) -> int:
    """Steps ``step+1 .. config.steps``; returns the last step done. Every rank takes the same decisions at the same
    step (log, checkpoint, stop), since each of them is a collective call or waits on one."""
    import torch

    module = distributed.wrap(world, net, device)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    window_start, window_tokens, window_steps = time.monotonic(), 0, 0
    run_start = time.monotonic()
    while step < config.steps:
        step_start = time.monotonic()
        batch = blocks.batch(step).tensor_split(world.size)[world.rank].to(device)
        if autocast is not None:
            with autocast:
                loss = module(input_ids=batch, labels=batch).loss
        else:
            loss = module(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += int(batch.numel()) * world.size
        window_tokens += int(batch.numel()) * world.size
        window_steps += 1
        if step % config.log_every == 0 or step == config.steps:
            mean_loss = distributed.mean(world, loss)
            now = time.monotonic()
            eta = _clock((now - window_start) / window_steps * (config.steps - step))
            if world.is_main:
                log(
                    f"step {step}/{config.steps} | loss {mean_loss:.4f} | lr {scheduler.get_last_lr()[0]:.2e} | "
                    f"{window_tokens / max(now - window_start, 1e-9):,.0f} tok/s | "
                    f"elapsed {_clock(elapsed_before + now - run_start)} | eta {eta}"
                )
            window_start, window_tokens, window_steps = now, 0, 0
        # Measured after the log line, whose loss.item() waits for the GPU: CUDA runs the step asynchronously.
        progress.clock.add(time.monotonic() - step_start)
        stopping = distributed.any_rank(world, stop.stop, device)
        checkpointing = step % config.checkpoint_every == 0 or step == config.steps or stopping
        states = fsdp.full_states(net, optimizer) if checkpointing else (None, None)  # every rank, when sharded
        if checkpointing and world.is_main:
            elapsed = elapsed_before + time.monotonic() - run_start
            target = checkpoint.save(
                store,
                step,
                _artefact(config, net),
                tok,
                optimizer,
                scheduler,
                tokens_seen,
                elapsed,
                config.as_dict(),
                config.keep_checkpoints,
                states,
            )
            log(f"checkpoint step {step} -> {target}")
            progress.write(step, checkpoint.name_for(step))
        # Stop only after a checkpoint of this step: a signal that came after the decision waits one more step.
        if checkpointing and stopping:
            log(f"stopped by signal {stop.signum or 'on another rank'} after the checkpoint of step {step}")
            break
    return step


def _publish_final(
    store: storage.Store, net: Any, tok: Any, config: TrainConfig, step: int, weights: dict[str, Any] | None
) -> str:
    """The served artefact: HF-format weights (safetensors), or a PEFT adapter, + tokenizer with its chat template;
    ``weights``: a sharded model's, gathered whole (None: the model's own)."""
    staged = store.staging_dir(_final(config))
    net.save_pretrained(staged, safe_serialization=True, state_dict=weights)
    tokenizer.save_tokenizer(tok, staged)
    summary = {"step": step, "dataset_uri": config.dataset_uri, "settings": config.as_dict()}
    (staged / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return store.publish(staged, _final(config))
