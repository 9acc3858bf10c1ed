"""Running a trigger in a test: its first event, as the triggerer would receive it."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger


def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    """The payload of the first event ``trigger`` yields; fails if it ends without one."""

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())
