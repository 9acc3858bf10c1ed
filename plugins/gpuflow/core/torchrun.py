"""How a training command runs once per accelerator: the same Python program started by torchrun
(``python -m torch.distributed.run``), its options given as the ``PET_*`` variables torchrun reads.

Here, in core, because the plan refuses a command torchrun cannot start before anything is paid for, and the
manifests (kube/) start it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpuflow.core.errors import RequestError

RENDEZVOUS_PORT = 29500  # torchrun's default --master-port
_LAUNCHER = ("-m", "torch.distributed.run")


def needed(nodes: int, per_node: int) -> bool:
    """One process is started as it is; more than one accelerator in all needs torchrun."""
    return nodes * per_node > 1


def torchrun_command(command: Sequence[str]) -> list[str]:
    """``python -m MODULE ...`` or ``python SCRIPT ...`` as the same program started by torchrun."""
    if len(command) >= 2 and command[0] in ("python", "python3") and command[1] != "-c":
        return [command[0], *_LAUNCHER, *command[1:]]
    raise RequestError(
        "training_command",
        list(command),
        "a Python program torchrun can start once per accelerator: python -m MODULE ... or python SCRIPT ... "
        "(or count=1 and nodes=1, which run the command as it is)",
    )


def one_node_env(per_node: int) -> dict[str, str]:
    """torchrun on one node: its own rendezvous (``--standalone``), one process per accelerator."""
    return {"PET_STANDALONE": "1", "PET_NNODES": "1", "PET_NPROC_PER_NODE": str(per_node)}


def nodes_env(nodes: int, per_node: int, rendezvous: str) -> dict[str, str]:
    """torchrun on each of ``nodes`` nodes meeting at ``rendezvous`` (rank 0's node); the node rank comes apart."""
    return {
        "PET_NNODES": str(nodes),
        "PET_NPROC_PER_NODE": str(per_node),
        "PET_MASTER_ADDR": rendezvous,
        "PET_MASTER_PORT": str(RENDEZVOUS_PORT),
    }
