"""The dataset: text at a URI, checked before anything heavy starts, then cut into fixed-length blocks.

Why a fixed order derived from (seed, step): a resumed run must see the batches the lost run would have seen
next, without persisting a data loader. ``batch_indices(step)`` is a pure function of the seed and the step,
so the step counter in a checkpoint is all the data position there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DatasetError
from .storage import backend_hint, filesystem

TEXT_SUFFIXES = (".txt", ".text", ".md")
_FIX = (
    "set DATASET_URI (or --dataset) to a UTF-8 text file or a folder of .txt files, e.g. "
    "/data/corpus.txt, file:///data/, s3://bucket/corpus.txt, gs://bucket/dir/, az://container/corpus.txt"
)


def read_text(uri: str) -> str:
    """All the dataset's text; a folder is the concatenation of its text files in name order."""
    try:
        fs, path = filesystem(uri)
    except ImportError as exc:
        raise DatasetError(
            f"dataset URI {uri!r}: no filesystem for its scheme ({exc}); install "
            f"{backend_hint(uri) or 'its fsspec backend'} in the training image"
        ) from exc
    except ValueError as exc:
        raise DatasetError(f"dataset URI {uri!r} is not a valid URI ({exc}); {_FIX}") from exc
    try:
        if not fs.exists(path):
            raise DatasetError(f"dataset not found at {uri!r}; {_FIX}")
        files = (
            [path]
            if fs.isfile(path)
            else sorted(str(p) for p in fs.find(path) if str(p).lower().endswith(TEXT_SUFFIXES))
        )
        if not files:
            raise DatasetError(f"dataset folder {uri!r} holds no text files ({', '.join(TEXT_SUFFIXES)}); {_FIX}")
        text = "\n".join(_read(fs, f) for f in files)
    except DatasetError:
        raise
    except UnicodeDecodeError as exc:
        raise DatasetError(f"dataset at {uri!r} is not UTF-8 text ({exc}); {_FIX}") from exc
    except Exception as exc:  # permissions, network, credentials: the message is the store's
        raise DatasetError(f"cannot read dataset at {uri!r}: {exc}; check the path and the pod's credentials") from exc
    if not text.strip():
        raise DatasetError(f"dataset at {uri!r} is empty; {_FIX}")
    return text


def _read(fs: Any, path: str) -> str:
    with fs.open(path, "rb") as handle:
        data: bytes = handle.read()
    return data.decode("utf-8")


@dataclass(frozen=True)
class Blocks:
    """Token blocks of ``seq_len``; the stream has an end-of-text token between documents (lines)."""

    tokens: Any  # torch.LongTensor [n_blocks, seq_len]
    seed: int
    batch_size: int

    @property
    def count(self) -> int:
        return int(self.tokens.shape[0])

    def batch_indices(self, step: int) -> Any:
        """Rows of step ``step`` (0-based): a fresh permutation per epoch, seeded by (seed, epoch)."""
        import torch

        n = self.count
        start = step * self.batch_size
        rows = []
        for i in range(start, start + self.batch_size):
            epoch, pos = divmod(i, n)
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            rows.append(int(torch.randperm(n, generator=generator)[pos]))
        return torch.tensor(rows, dtype=torch.long)

    def batch(self, step: int) -> Any:
        return self.tokens[self.batch_indices(step)]


def make_blocks(text: str, tokenizer: Any, seq_len: int, seed: int, batch_size: int, uri: str) -> Blocks:
    """Tokenize every line (a document) with EOS between, then cut the stream into ``seq_len`` blocks."""
    import torch

    eos = tokenizer.eos_token_id
    docs = [line for line in text.splitlines() if line.strip()]
    ids: list[int] = []
    for encoded in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(eos)
    n_blocks = len(ids) // seq_len
    if n_blocks < 1:
        raise DatasetError(
            f"dataset at {uri!r} has {len(ids)} tokens, fewer than one block of seq_len {seq_len}; "
            "add text or lower --seq-len"
        )
    tokens = torch.tensor(ids[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)
    return Blocks(tokens=tokens, seed=seed, batch_size=batch_size)
