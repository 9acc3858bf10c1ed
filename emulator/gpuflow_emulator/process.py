"""One container run as a local process group, with its output captured as the container log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from gpuflow_emulator.timeutil import now

_CHUNK = 64 * 1024


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
    async def start(cls, argv: list[str], cwd: Path, env: Mapping[str, str], log: ContainerLog) -> ContainerProcess:
        """Start `argv` in its own session (so the whole group can be signalled); raises OSError."""
        process = await asyncio.create_subprocess_exec(
            *argv,
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

    async def wait(self) -> int:
        """Wait for the main process, end what it left behind (as a teardown does), return the code."""
        code = await self._process.wait()
        self.signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        return 128 - code if code < 0 else code

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
