"""SIGTERM and SIGHUP stop a harness the way Ctrl-C does.

Python's default for SIGTERM and SIGHUP ends the process at once, skipping every ``finally`` and context exit;
what ``make demo`` and the test session started in process groups of their own (Airflow's four components, the
emulator's object stores and pods) then ran on after a CI runner's timeout (SIGTERM) or a closed terminal
(SIGHUP). Raising ``KeyboardInterrupt`` instead sends both down the path Ctrl-C takes, which stops all of it.
"""

from __future__ import annotations

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def install() -> None:
    """From now on, in this (main) thread, SIGTERM and SIGHUP raise ``KeyboardInterrupt``, the first time."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """Interrupt once; a repeat while the stop runs must not cut it short (a runner that insists sends SIGKILL).
    A handler, not SIG_IGN: an ignored signal stays ignored in every child started later."""
    for other in STOP_SIGNALS:
        signal.signal(other, _already_stopping)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def _already_stopping(_signum: int, _frame: FrameType | None) -> None:
    """The stop is under way: nothing more to do."""
