"""Spot nodes taken back as their cloud does it: the notice, what happens to the pods, the machine's end.

The per-cloud figures are each flavor's `Interruption` (eks, gke, aks); this module runs them against the emulated
cluster through the `Emulator` node interface, and says which nodes a spot trace takes when it drops (`victims`).
The pool's side (bookkeeping, replacements) is the engine's (`nodepools`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from gpuflow_emulator.clouds.pools import Interruption, Pool
from gpuflow_emulator.emulator import Emulator
from gpuflow_emulator.errors import ApiError


async def interrupt(
    emulator: Emulator, cluster: str, node: str, interruption: Interruption, seconds: Callable[[float], float]
) -> None:
    """Run one node's interruption from the notice to the machine's end (`seconds` turns cloud seconds into real
    ones): cordon and drain, then the node goes and what still runs there fails as a node loss; or the kubelet's
    graceful node shutdown, then the Node stays, unreachable. A node its pool removes meanwhile is left alone."""
    notice = seconds(interruption.notice_seconds)
    if interruption.shutdown_windows is None:
        emulator.cordon_node(cluster, node)
        emulator.drain_node(cluster, node, notice)
        await asyncio.sleep(notice)
        with contextlib.suppress(ApiError):
            await emulator.remove_node(cluster, node)
        return
    ordinary, critical = interruption.shutdown_windows
    shutdown = emulator.shut_down_node(cluster, node, (seconds(ordinary), seconds(critical)))
    await asyncio.gather(shutdown, asyncio.sleep(notice))
    emulator.mark_node_unreachable(cluster, node)


def victims(pools: Iterable[Pool], excess: int) -> list[tuple[Pool, str]]:
    """The `excess` spot nodes a trace takes back: the most recently joined of the newest pools first."""
    alive = [(pool, node) for pool in sorted(pools, key=lambda p: p.serial) for node in pool.nodes]
    alive = [(pool, node) for pool, node in alive if node not in pool.down]
    return alive[len(alive) - excess :] if excess > 0 else []
