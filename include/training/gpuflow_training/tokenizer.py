"""The tokenizer: a byte-level BPE trained on the dataset (from scratch) or the base model's own (fine-tune).

Why byte-level BPE: any UTF-8 input encodes (no unknown token), so prompts sent to the served model never fail,
and 256 byte tokens plus a few hundred merges is enough for the demo. The chat template is set on both paths,
because vLLM's ``/v1/chat/completions`` refuses a model whose tokenizer has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, IM_START, IM_END]
# ChatML-style; ends generation prompts with the assistant header so the model continues as the assistant.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _lines(text: str, chunk: int = 1000) -> Iterator[list[str]]:
    lines = text.splitlines()
    for i in range(0, len(lines), chunk):
        yield lines[i : i + chunk]


def train_tokenizer(text: str, vocab_size: int) -> Any:
    """A ``PreTrainedTokenizerFast`` with ``vocab_size`` entries (bytes + merges + specials) and the template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_lines(text), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def load_tokenizer(model_dir: str) -> Any:
    """The base model's tokenizer, given a pad token and a chat template if it lacks them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tokenizer(tokenizer: Any, directory: Path) -> None:
    """Save, then make ``tokenizer_config.json`` readable by older transformers too (the cloud vLLM image pins
    its own): the generic class name, and the chat template inline as well as in ``chat_template.jinja``."""
    tokenizer.save_pretrained(directory)
    path = directory / "tokenizer_config.json"
    settings = json.loads(path.read_text())
    if settings.get("tokenizer_class") in {"TokenizersBackend", None}:
        settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    settings["chat_template"] = tokenizer.chat_template
    path.write_text(json.dumps(settings, indent=2) + "\n")
