"""How a backend turns a failed SDK call into our reading of it, in one place for every cloud.

Each backend method wraps its SDK call in ``classified(self)``: any exception leaves as the backend's
``CloudError`` (the SDK's exception chained), except the few an idempotent method expects and absorbs
(a pool that is already there, or already gone). ``codes_in_text`` is the one way to read a code that a
cloud puts only in a message's text. ``retrying`` repeats a call the cloud refused for now (throttling, 5xx,
"please wait and try again"), for the calls that have no failover around them: deletes.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol, TypeVar

from gpuflow.core.errors import CloudError, ErrorKind
from gpuflow.core.failover import MAX_TRANSIENT_RETRIES, backoff_s

log = logging.getLogger(__name__)
T = TypeVar("T")


class Classifier(Protocol):
    def classify(self, exc: BaseException) -> CloudError: ...


def _never(exc: BaseException) -> bool:
    return False


@contextmanager
def classified(backend: Classifier, *, absorb: Callable[[BaseException], bool] = _never) -> Iterator[None]:
    """Raise what the block raises as ``backend.classify(exc)``; an exception ``absorb`` accepts ends the
    block quietly (the caller goes on after the ``with``: get-or-create, delete of a missing pool)."""
    try:
        yield
    except Exception as exc:
        if not absorb(exc):
            raise backend.classify(exc) from exc


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    retries: int = MAX_TRANSIENT_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """``call()``, tried again up to ``retries`` times, after a backoff, while it fails with a TRANSIENT
    ``CloudError``; any other failure, or the last transient one, is raised."""
    attempt = 1
    while True:
        try:
            return call()
        except CloudError as error:
            if error.kind is not ErrorKind.TRANSIENT or attempt > retries:
                raise
            delay = backoff_s(attempt, jitter())
            log.warning("%s: %s; trying again in %.1fs (%d of %d)", what, error, delay, attempt, retries)
            sleep(delay)
            attempt += 1


def codes_in_text(text: str, codes: Iterable[str]) -> list[str]:
    """The known ``codes`` found as whole words in ``text``, in the order they appear."""
    return _whole_words(tuple(codes)).findall(text)


@lru_cache(maxsize=8)
def _whole_words(codes: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so that a code that begins another is not matched inside it.
    return re.compile(r"\b(" + "|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True)) + r")\b")
