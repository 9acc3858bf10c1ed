"""Long-lived helper processes that do not outlive the process that started them.

A harness (a pytest worker, ``make demo``, ``make chaos``) stops what it started on the way out, but it can be
killed outright: SIGKILL, or pytest-xdist's controller ending a worker that takes more than a few seconds to stop.
What it had started in sessions of their own (the emulator, the object stores, Airflow's components, vLLM) would
then run on; with this, the kernel sends each of them SIGTERM, which each handles as a stop.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: SIGTERM this child when the thread that started it ends (Linux;
    elsewhere nothing)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
