"""``AdmissionTrigger``: wait in the triggerer until the run's GPU lease is granted (``gpuflow.core.admission``).

Each poll asks the state database to grant what fits, first come first, so the queue moves as soon as a teardown
or the janitor gives GPUs back, whichever trigger polls first. The wait holds no worker and no ``gpu`` slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gpuflow.core.errors import describe
from gpuflow.core.settings import gpu_limits
from gpuflow.state.admission import Leases
from gpuflow.triggers import events


class AdmissionTrigger(BaseTrigger):
    """Polls the run's lease until it is granted; logs each change of its place in the queue.

    :param run_key: the run's label (its lease's key). :param poll_interval_s: seconds between polls.
    """

    def __init__(self, run_key: str, poll_interval_s: float) -> None:
        super().__init__()
        self.run_key = run_key
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"run_key": self.run_key, "poll_interval_s": self.poll_interval_s}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        leases, limits = Leases(), gpu_limits()
        last_place = -1
        while True:
            try:
                admission = await asyncio.to_thread(leases.admit, self.run_key, limits, now=datetime.now(UTC))
            except Exception as exc:  # a busy or briefly unreachable database: ask again at the next poll
                self.log.warning("lease of %s: %s; asking again", self.run_key, describe(exc))
            else:
                if admission.granted:
                    yield TriggerEvent(events.success({"run_key": self.run_key}, gpus_held=admission.gpus_held))
                    return
                if admission.place != last_place:
                    last_place = admission.place
                    self.log.info(
                        "waiting for GPUs: place %d of %d in the queue (%d GPUs held by admitted runs)",
                        admission.place,
                        admission.waiting,
                        admission.gpus_held,
                    )
            await asyncio.sleep(self.poll_interval_s)
