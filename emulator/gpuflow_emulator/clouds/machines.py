"""What a node of each cloud's instance type carries, read from the emulator's own data files.

The emulator is the referee, so it must not learn these facts from gpuflow: a wrong fact there (GPUs per
machine type, a label) would be wrong on both sides and no test could see it. `data/instance_types.yaml` and
`data/gke_accelerators.yaml` are written from the clouds' documentation, each family citing its page, and
tests/emulator/test_emulator_facts_agree.py compares them with gpuflow's tables.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

INSTANCE_TYPES = "instance_types.yaml"
GKE_ACCELERATORS = "gke_accelerators.yaml"


@dataclass(frozen=True, slots=True)
class Shape:
    """The accelerators on one node: which model, how many, and the Kubernetes resource advertising them."""

    accelerator: str
    count: int
    resource: str


@dataclass(frozen=True, slots=True)
class GkeAccelerators:
    """GKE's accelerator type per GPU model, the node label that carries it and the resource GPUs appear as."""

    label: str
    resource: str
    types: dict[str, str]


@functools.cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((resources.files("gpuflow_emulator") / "data" / name).read_text())
    return data


@functools.cache
def _shapes() -> dict[tuple[str, str], Shape]:
    """(cloud, instance type) -> Shape; a family whose resource has no cited device plugin is a data error."""
    raw = _load(INSTANCE_TYPES)
    table: dict[tuple[str, str], Shape] = {}
    for family in raw["families"]:
        if family["resource"] not in raw["resources"]:
            raise ValueError(f"{INSTANCE_TYPES}: family {family['family']}: unknown resource {family['resource']}")
        for size, count in family["sizes"].items():
            table[(family["cloud"], size)] = Shape(family["accelerator"], int(count), family["resource"])
    return table


@functools.cache
def _tpu_slice() -> tuple[str, re.Pattern[str], str, int]:
    """(cloud, slice-name pattern, resource, devices per node) of the TPU slices the catalog names."""
    raw = _load(INSTANCE_TYPES)["tpu_slices"]
    versions = "|".join(re.escape(v) for v in raw["versions"])
    pattern = re.compile(rf"{re.escape(raw['prefix'])}(?:{versions})-[0-9]+")
    return raw["cloud"], pattern, raw["resource"], int(raw["per_node"])


def shape(cloud: str, instance_type: str) -> Shape | None:
    """What a node of ``instance_type`` carries, or None for a type without accelerators of its own."""
    if (found := _shapes().get((cloud, instance_type))) is not None:
        return found
    tpu_cloud, pattern, resource, per_node = _tpu_slice()
    if cloud == tpu_cloud and pattern.fullmatch(instance_type):
        return Shape(instance_type, per_node, resource)
    return None


@functools.cache
def gke_accelerators() -> GkeAccelerators:
    raw = _load(GKE_ACCELERATORS)
    return GkeAccelerators(raw["label"], raw["resource"], dict(raw["types"]))
