"""How big each GPU node's boot disk is: it holds the images, the model cache and a staged checkpoint.

EKS gives a node group 20 GiB unless told otherwise, less than the vLLM image alone, so every backend asks
for a size explicitly. The size follows the node the job runs on: whatever the node trains or serves lives in
its accelerators' memory, so neither the served model's weights (downloaded into the serving pod's cache)
nor one checkpoint (weights and optimizer state, staged on disk before it is uploaded) can be larger than
that memory. Room for both, beside the two images, is enough for any job the node can run; a node with
little accelerator memory still gets the floor. A cluster may set ``disk_gib`` in its settings
(``include/config/clusters.yaml``) to choose the size itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gpuflow.core.clouds import traits
from gpuflow.core.errors import RequestError

# vllm/vllm-openai is about 25 GB unpacked (vllm-project/vllm issue 17163; pull request 22377 measures 28.6 GB).
SERVING_IMAGE_GIB = 30
TRAINING_IMAGE_GIB = 10  # the training image (PyTorch + transformers) is about 8 GB
FLOOR_GIB = 100
SETTING = "disk_gib"


def needed_gib(accelerator_memory_gib: float | None) -> int:
    """Both images plus the model twice (cached for serving, staged as a checkpoint), never under the floor.

    ``accelerator_memory_gib`` is the memory of all the node's accelerators together; None (a catalog row
    that does not say) gives the floor.
    """
    model_room = 2 * (accelerator_memory_gib or 0)
    return max(FLOOR_GIB, SERVING_IMAGE_GIB + TRAINING_IMAGE_GIB + math.ceil(model_room))


def disk_gib(cloud: str, settings: Mapping[str, Any], accelerator_memory_gib: float | None) -> int:
    """The cluster's ``disk_gib`` when it sets one, else what the node needs, within what the cloud accepts."""
    override = cluster_override(cloud, settings)
    if override is not None:
        return override
    return min(needed_gib(accelerator_memory_gib), traits(cloud).max_disk_gib)


def cluster_override(cloud: str, settings: Mapping[str, Any]) -> int | None:
    """A cluster's ``settings.disk_gib``, checked against the image size and the cloud's largest disk."""
    override = settings.get(SETTING)
    if override is None:
        return None
    largest = traits(cloud).max_disk_gib
    if isinstance(override, bool) or not isinstance(override, int) or not SERVING_IMAGE_GIB <= override <= largest:
        raise RequestError(
            f"settings.{SETTING}",
            override,
            f"a whole number of GiB from {SERVING_IMAGE_GIB} (the vLLM image alone takes about 25 GB) to "
            f"{largest} ({traits(cloud).kubernetes}'s largest node disk); remove it to size the disk from the "
            "node's accelerator memory",
        )
    return override


def gib_in_gb(gib: int) -> int:
    """GiB as the whole GB GKE (``diskSizeGb``) and AKS (``osDiskSizeGB``) count in, rounded up so none is lost."""
    return math.ceil(gib * 2**30 / 10**9)
