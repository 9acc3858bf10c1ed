"""Steady load through an endpoint during a disruption (a model swap, a lost node): what failed, how slow the
answers were, and how long until it served again.

One short completion at a time, from a thread, so the load is gentle enough for a production endpoint and every
request's latency is its own (no queueing behind the generator's other requests).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from gpuflow.serving.client import OpenAIClient


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: when it was sent and answered (``time.monotonic()``), and whether it succeeded."""

    sent: float
    ended: float
    ok: bool

    @property
    def latency_s(self) -> float:
        return self.ended - self.sent


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """The requests sent in a window: how many, how many failed, and the successful ones' latency."""

    sent: int
    failed: int
    p50_ms: float
    p99_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "p50_ms": round(self.p50_ms, 1),
            "p99_ms": round(self.p99_ms, 1),
        }

    def describe(self) -> str:
        return f"{self.sent} requests, {self.failed} failed, latency p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms"


class SteadyLoad:
    """Completions of ``max_tokens`` tokens, one after another, until the ``with`` block ends."""

    def __init__(self, client: OpenAIClient, model: str, *, prompt: str = "hello", max_tokens: int = 4) -> None:
        self.client, self.model = client, model
        self.prompt, self.max_tokens = prompt, max_tokens
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def sent(self) -> int:
        return len(self.answers)

    @property
    def failed(self) -> int:
        return sum(not a.ok for a in self.answers)

    @property
    def successes(self) -> list[float]:
        """When each answer came (``time.monotonic()``)."""
        return [a.ended for a in self.answers if a.ok]

    @property
    def failures(self) -> list[float]:
        return [a.ended for a in self.answers if not a.ok]

    def figures(self, since: float = 0.0, until: float = float("inf")) -> LoadFigures:
        """The requests sent from ``since`` to ``until`` (``time.monotonic()``)."""
        window = [a for a in list(self.answers) if since <= a.sent < until]
        latencies = np.asarray([a.latency_s for a in window if a.ok] or [0.0]) * 1000
        return LoadFigures(
            len(window),
            sum(not a.ok for a in window),
            float(np.percentile(latencies, 50)),
            float(np.percentile(latencies, 99)),
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                self.client.complete(self.model, self.prompt, max_tokens=self.max_tokens)
            except Exception:  # any failure counts: refused, reset, timed out, an error status
                self.answers.append(Answer(sent, time.monotonic(), ok=False))
                time.sleep(0.2)
            else:
                self.answers.append(Answer(sent, time.monotonic(), ok=True))

    def wait_for_successes(self, count: int, within_s: float = 60) -> None:
        self._wait(lambda: len(self.successes) >= count, within_s, f"{count} answers")

    def serving_again_after(self, moment: float, within_s: float) -> float:
        """Seconds from ``moment`` to the first answer after a failure that followed it."""

        def back() -> float | None:
            failed = [t for t in self.failures if t > moment]
            answered = [t for t in self.successes if failed and t > failed[0]]
            return answered[0] - moment if answered else None

        self._wait(lambda: back() is not None, within_s, "an answer after the disruption's failures")
        seconds = back()
        assert seconds is not None
        return seconds

    def _wait(self, done: Callable[[], bool], within_s: float, what: str) -> None:
        deadline = time.monotonic() + within_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {within_s:.0f}s ({self.sent} sent, {self.failed} failed)")
            time.sleep(0.2)


class Log(Protocol):
    """What ``MeasuredAct`` writes to: a task's logger, or ``logging``'s."""

    def info(self, msg: str, /, *args: object) -> object: ...

    def warning(self, msg: str, /, *args: object) -> object: ...


class MeasuredAct:
    """``swap_load``'s measure of an act on a live endpoint (a model swap, an adapter load): a ``SteadyLoad`` on
    ``model`` through ``client`` (None: no load, the act is only timed), warmed up by ``warm_up`` answers before the
    act (a model that does not answer is logged, not waited for: it must not block its replacement); ``report`` gives
    the act's seconds and the load's figures before and during it, and logs them."""

    def __init__(self, client: OpenAIClient | None, model: str, log: Log, *, what: str, warm_up: int):
        self._client, self._log, self._what, self._warm_up = client, log, what, warm_up
        self._load = SteadyLoad(client, model) if client is not None else None
        self._stack = contextlib.ExitStack()
        self.started = 0.0

    def __enter__(self) -> MeasuredAct:
        if self._client is not None and self._load is not None:
            self._stack.enter_context(self._client)
            self._stack.enter_context(self._load)
            try:
                self._load.wait_for_successes(self._warm_up)
            except TimeoutError as exc:
                self._log.warning(
                    "the live model does not answer the steady load (%s): going on with %s", exc, self._what
                )
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stack.close()

    def report(self, *, settle_s: float = 0) -> dict[str, Any]:
        """``swap_s``: seconds since the act started; ``load``: the figures before and during it, the load running
        ``settle_s`` more first (answers after the act, too)."""
        result: dict[str, Any] = {"swap_s": round(time.monotonic() - self.started, 1)}
        if self._load is not None:
            time.sleep(settle_s)
            before, during = self._load.figures(until=self.started), self._load.figures(since=self.started)
            self._log.info("steady load before %s: %s", self._what, before.describe())
            self._log.info("steady load through %s: %s", self._what, during.describe())
            result["load"] = {"before": before.to_dict(), "during": during.to_dict()}
        return result
