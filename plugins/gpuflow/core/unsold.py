"""Offers a price list shows that the cloud will not sell as listed, each with the cloud's own word for it.

Price lists (and the catalogs built from them) list every size in every region; the clouds' documentation says
which of them a managed Kubernetes node pool can use, and in which market. An offer the cloud refuses would
fail at the create call, after the plan chose it over offers that work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Effect(StrEnum):
    NOT_SOLD = "not sold"  # the row is rejected
    SPOT_ONLY = "spot only"  # the on-demand price is dropped: never bought on-demand


@dataclass(frozen=True, slots=True)
class Rule:
    cloud: str
    instance_type: re.Pattern[str]
    effect: Effect
    reason: str  # with its source, for the catalog report


RULES = (
    Rule(
        "azure",
        re.compile(r"Standard_NV\d+as_v4"),
        Effect.NOT_SOLD,
        "NVv4 (AMD MI25) sizes are not supported on AKS (AKS docs, use-nvidia-gpu: 'The NVv4 series (based on "
        "AMD GPUs) aren't supported on AKS')",
    ),
    Rule(
        "gcp",
        re.compile(r"a4-highgpu-\d+g"),
        Effect.SPOT_ONLY,
        "A4 (B200) is sold as Spot, Flex-start or reserved capacity, not on-demand (Compute Engine docs, "
        "accelerator-optimized machines, consumption options; dstack issue 3088)",
    ),
    Rule(
        "gcp",
        re.compile(r"a3-highgpu-[124]g"),
        Effect.SPOT_ONLY,
        "A3 High with 1, 2 or 4 GPUs is sold as Spot or Flex-start only, not on-demand (Compute Engine docs, "
        "accelerator-optimized machines, consumption options)",
    ),
)


def rule_for(cloud: str, instance_type: str) -> Rule | None:
    """The rule that limits how ``instance_type`` is sold on ``cloud``, if any."""
    return next((r for r in RULES if r.cloud == cloud and r.instance_type.fullmatch(instance_type)), None)
