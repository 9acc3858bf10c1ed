"""One container run as a local process group, with its output captured as the container log.

A pod on a real cluster sees its image, its volumes and nothing of the Airflow worker that created it. Here
containers are local processes, so the directories the config names as the worker's own (`worker_paths`) are
hidden: the container starts in a new user, mount and UTS namespace (`unshare`, no privilege needed) in which each
of them is covered by an empty tmpfs. The same namespaces give a pod that has its own network identity (see
dns.py) its hostname and its kubelet-managed `/etc/hosts` (a bind mount of the file the kubelet keeps current).
A kernel that forbids unprivileged user namespaces (e.g. Ubuntu 24.04's AppArmor default) leaves the paths visible
and the names unresolved, and the emulator says so once in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gpuflow_emulator.timeutil import now

_CHUNK = 64 * 1024
# $1: a hosts file to bind on /etc/hosts, $2: a hostname (each may be empty); then mount an empty tmpfs on each
# existing directory given before `--`, and exec the container's argv after it.
_ISOLATE = (
    'if [ -n "$1" ]; then mount --bind "$1" /etc/hosts || exit 125; fi; '
    'if [ -n "$2" ]; then hostname "$2" || exit 125; fi; shift 2; '
    'while [ "$1" != -- ]; do if [ -d "$1" ]; then mount -t tmpfs -o mode=0755 worker-only "$1" || exit 125; fi; '
    'shift; done; shift; exec "$@"'
)

_NAMESPACES = ("--user", "--map-root-user", "--mount", "--uts")

log = logging.getLogger(__name__)


@functools.cache
def namespaces_available() -> bool:
    """Whether this kernel lets an unprivileged process make a user + mount namespace (checked once)."""
    try:
        probe = subprocess.run(["unshare", *_NAMESPACES, "true"], capture_output=True)
    except OSError:
        return False
    if probe.returncode != 0:
        reason = probe.stderr.decode().strip()
        log.warning("worker_paths stay visible to containers and pod names do not resolve: unshare failed (%s)", reason)
    return probe.returncode == 0


@dataclass(frozen=True)
class Isolation:
    """What a container must not see (the worker's `hidden` paths) and the network identity it gets: the
    kubelet-managed `hosts` file and the pod's `hostname` (None: the machine's own)."""

    hidden: tuple[Path, ...] = ()
    hosts: Path | None = None
    hostname: str | None = None


def isolated(isolation: Isolation, argv: list[str], env: Mapping[str, str]) -> list[str]:
    """`argv` run as `isolation` says; argv[0] is resolved first, so a missing program is still a start error."""
    program = shutil.which(argv[0], path=env.get("PATH"))
    if program is None:
        raise FileNotFoundError(f"executable file not found in $PATH: {argv[0]!r}")
    if isolation == Isolation() or not namespaces_available():
        return argv
    wrapper = ["unshare", *_NAMESPACES, "--", "/bin/sh", "-c", _ISOLATE, "pod"]
    identity = [str(isolation.hosts or ""), isolation.hostname or ""]
    return [*wrapper, *identity, *map(str, isolation.hidden), "--", program, *argv[1:]]


def _kubernetes_code(returncode: int) -> int:
    """A process's return code as a container exit code: 128 + the signal for a process a signal ended."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerLog:
    """Lines a container wrote (stdout and stderr interleaved, as kubelet keeps them) and when each came."""

    def __init__(self) -> None:
        self.lines: list[tuple[datetime, bytes]] = []
        self.closed = False
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _wake(self) -> None:
        self._changed.set_result(None)
        self._changed = asyncio.get_running_loop().create_future()

    def append(self, line: bytes) -> None:
        self.lines.append((now(), line))
        self._wake()

    def close(self) -> None:
        """The container has exited and its state is published: followers stop here."""
        self.closed = True
        self._wake()

    async def changed(self, timeout: float) -> None:
        """Wait until a line arrives or the log closes (or `timeout` passes)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)


class ContainerProcess:
    """A started container: its process group, and the task copying its output into the log."""

    def __init__(self, process: asyncio.subprocess.Process, log: ContainerLog) -> None:
        self._process = process
        self._reader = asyncio.create_task(self._copy_output(log))

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(
        cls, argv: list[str], cwd: Path, env: Mapping[str, str], log: ContainerLog, isolation: Isolation
    ) -> ContainerProcess:
        """Start `argv` in its own session (so the whole group can be signalled), isolated; raises OSError."""
        process = await asyncio.create_subprocess_exec(
            *isolated(isolation, argv, env),
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process, log)

    async def _copy_output(self, log: ContainerLog) -> None:
        assert self._process.stdout is not None
        pending = b""
        while chunk := await self._process.stdout.read(_CHUNK):
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                log.append(line + b"\n")
        if pending:
            log.append(pending)

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    @property
    def exit_code(self) -> int | None:
        """The exit code as Kubernetes reports it, None while the process runs."""
        code = self._process.returncode
        return None if code is None else _kubernetes_code(code)

    async def wait(self) -> int:
        """Wait for the main process, end what it left behind (as a teardown does), return the exit code."""
        code = await self._process.wait()
        self.signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        return _kubernetes_code(code)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self._process.wait()

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM the group, then SIGKILL it once the grace period is over."""
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._process.wait()), grace_seconds)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self._process.wait()
