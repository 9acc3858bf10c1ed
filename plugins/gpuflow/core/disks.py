"""How big each GPU node's boot disk is: it holds the serving image, the model cache and the checkpoints.

EKS gives a node group 20 GiB unless told otherwise, less than the vLLM image alone, so every backend asks
for this size explicitly. A cluster may set ``disk_gib`` in its settings (``include/config/clusters.yaml``)
for bigger models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gpuflow.core.errors import RequestError

# vllm/vllm-openai is about 25 GB unpacked (vllm-project/vllm issue 17163; pull request 22377 measures 28.6 GB).
SERVING_IMAGE_GIB = 30
# Model weights in the cache, the training checkpoints and the training image (~8 GB) beside them.
MODEL_ALLOWANCE_GIB = 60
FLOOR_GIB = 100
SETTING = "disk_gib"


def disk_gib(settings: Mapping[str, Any]) -> int:
    """The cluster's ``disk_gib`` override, else image + model allowance, never under the floor."""
    override = settings.get(SETTING)
    if override is None:
        return max(FLOOR_GIB, SERVING_IMAGE_GIB + MODEL_ALLOWANCE_GIB)
    if isinstance(override, bool) or not isinstance(override, int) or override < SERVING_IMAGE_GIB:
        raise RequestError(
            f"settings.{SETTING}",
            override,
            f"a whole number of GiB, at least {SERVING_IMAGE_GIB} (the vLLM image alone takes about 25 GB); "
            f"remove it to get {FLOOR_GIB}",
        )
    return override


def gib_in_gb(gib: int) -> int:
    """GiB as the whole GB GKE (``diskSizeGb``) and AKS (``osDiskSizeGB``) count in, rounded up so none is lost."""
    return math.ceil(gib * 2**30 / 10**9)
