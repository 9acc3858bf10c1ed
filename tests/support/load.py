"""Steady load through an endpoint during a disruption: what failed, and how long until it served again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from gpuflow.serving.client import OpenAIClient


class SteadyLoad:
    """One short completion after another, from a thread, until the ``with`` block ends."""

    def __init__(self, client: OpenAIClient, model: str) -> None:
        self.client, self.model = client, model
        self.sent = self.failed = 0
        self.successes: list[float] = []  # time.monotonic() of each answer
        self.failures: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                self.client.complete(self.model, "hello", max_tokens=4)
            except Exception:  # any failure counts: refused, reset, timed out, an error status
                self.failed += 1
                self.failures.append(time.monotonic())
                time.sleep(0.2)
            else:
                self.successes.append(time.monotonic())

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
                raise AssertionError(f"no {what} within {within_s:.0f}s ({self.sent} sent, {self.failed} failed)")
            time.sleep(0.2)
