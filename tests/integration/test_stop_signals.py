"""SIGTERM and SIGHUP stop a harness the way Ctrl-C does: what it started in process groups of its own goes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
# A harness in small: a child process group started the way the Airflow stack and the object stores are, stopped
# on the way out (slowly, so a second signal lands during the stop).
HARNESS = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from scripts import stop_signals

    stop_signals.install()
    group = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"],
        start_new_session=True,
    )
    try:
        print(group.pid, flush=True)
        time.sleep(300)
    finally:
        time.sleep(1)
        os.killpg(group.pid, signal.SIGTERM)
        group.wait()
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_the_harness_and_the_process_group_it_started(stop: signal.Signals) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None
    group = int(harness.stdout.readline())
    assert _wait_for(lambda: len(_members(group)) == 2), "the child and its grandchild did not start"

    harness.send_signal(stop)
    harness.send_signal(stop)  # a repeat during the stop must not cut it short
    _, stderr = harness.communicate(timeout=30)

    assert "KeyboardInterrupt" in stderr
    assert f"stopped by {stop.name}" in stderr
    assert _members(group) == []


def _members(group: int) -> list[psutil.Process]:
    """Live processes of the process group (zombies count as gone)."""
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def _wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# A harness killed outright (SIGKILL: no handler, no ``finally``): its child in a session of its own must still go.
KILLED_HARNESS = textwrap.dedent(
    """
    import subprocess, sys, time
    from gpuflow_emulator.lifetime import die_with_parent

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True, preexec_fn=die_with_parent
    )
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


@pytest.mark.timeout(60)
def test_a_harness_killed_outright_takes_the_processes_it_started_with_it() -> None:
    harness = subprocess.Popen([sys.executable, "-c", KILLED_HARNESS], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert harness.stdout is not None
    child = psutil.Process(int(harness.stdout.readline()))

    harness.kill()
    harness.wait()

    assert _wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)
