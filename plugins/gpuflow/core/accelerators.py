"""Accelerator models: canonical names, aliases, nominal memory and the Kubernetes resource they consume.

Catalogs spell the same chip differently ("A100-80GB", "a100_80gb", "nvidia-a100-80gb") and state its
memory in GB or GiB. Everything downstream compares canonical names and the nominal memory below, so a
request for "24 GiB per GPU" matches an AWS L4 (catalogued as 22.35) and a GCP L4 (catalogued as 24) alike.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AcceleratorModel:
    """A chip as sold: its canonical name, memory variants (GB as marketed) and Kubernetes resource."""

    name: str
    memory_gib: tuple[float, ...]
    resource: str = "nvidia.com/gpu"
    aliases: tuple[str, ...] = ()
    compute_capability: float | None = None  # NVIDIA's, for the chips that have one (NVIDIA "CUDA GPUs" table)


NVIDIA = "nvidia.com/gpu"
AMD = "amd.com/gpu"
NEURON = "aws.amazon.com/neuron"
TPU = "google.com/tpu"

# Nominal memory per device, first figure the usual one. Sources: the vendors' data sheets.
MODELS: tuple[AcceleratorModel, ...] = (
    AcceleratorModel("B300", (288,), compute_capability=10.3),
    AcceleratorModel("B200", (180, 192), compute_capability=10.0),
    AcceleratorModel("H200", (141,), compute_capability=9.0),
    AcceleratorModel(
        "H100", (80, 94), aliases=("h100-80gb", "h100-sxm", "h100-pcie", "h100-nvl"), compute_capability=9.0
    ),
    AcceleratorModel("H100-MEGA", (80,), aliases=("h100-mega-80gb",), compute_capability=9.0),
    AcceleratorModel("A100-80GB", (80,), aliases=("a100-80g", "a100-sxm4-80gb"), compute_capability=8.0),
    AcceleratorModel("A100", (40,), aliases=("a100-40gb", "a100-40g", "a100-sxm4-40gb"), compute_capability=8.0),
    AcceleratorModel("L40S", (48,), compute_capability=8.9),
    AcceleratorModel("L4", (24,), compute_capability=8.9),
    AcceleratorModel("A10G", (24,), compute_capability=8.6),
    AcceleratorModel("A10", (24,), compute_capability=8.6),
    AcceleratorModel("T4", (16,), aliases=("tesla-t4",), compute_capability=7.5),
    AcceleratorModel("V100-32GB", (32,), aliases=("v100-32g",), compute_capability=7.0),
    AcceleratorModel("V100", (16,), aliases=("v100-16gb", "tesla-v100"), compute_capability=7.0),
    AcceleratorModel("P100", (16,), compute_capability=6.0),
    AcceleratorModel("P4", (8,), compute_capability=6.1),
    AcceleratorModel("M60", (8,), compute_capability=5.2),
    AcceleratorModel("MI300X", (192,), resource=AMD),
    AcceleratorModel("MI25", (16,), resource=AMD),
    AcceleratorModel("Inferentia2", (32,), resource=NEURON, aliases=("inf2",)),
    AcceleratorModel("Trainium", (32,), resource=NEURON, aliases=("trn1", "trainium1")),
    AcceleratorModel("Trainium2", (96,), resource=NEURON, aliases=("trn2",)),
)
# The serving engine's floor: vLLM's GPU installation page (docs.vllm.ai, v0.31 and later; the default image is
# v0.32): "compute capability 7.5 or higher (e.g., T4, RTX20xx, A100, L4, H100, B200...)".
MIN_SERVING_COMPUTE_CAPABILITY = 7.5
_SERVING_ENGINE = "the serving image (vLLM built for NVIDIA CUDA)"

# GKE's accelerator type per GPU model: the value of the node label cloud.google.com/gke-accelerator and of
# a node pool's accelerator config (GKE "Run GPUs in Standard node pools").
GKE_ACCELERATOR_TYPES = {
    "B200": "nvidia-b200",
    "H200": "nvidia-h200-141gb",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "A100-80GB": "nvidia-a100-80gb",
    "A100": "nvidia-tesla-a100",
    "L4": "nvidia-l4",
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
}

# Catalogued memory within this fraction of a nominal figure is that figure (GB vs GiB, rounding).
MEMORY_TOLERANCE = 0.10

_TPU_NAME = re.compile(r"^tpu-v[0-9a-z]+-[0-9]+$")
_BY_KEY: dict[str, AcceleratorModel] = {
    spelling.lower(): model for model in MODELS for spelling in (model.name, *model.aliases)
}


def _key(name: str) -> str:
    """Case, separators and a vendor prefix do not distinguish accelerators."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    return key.removeprefix("nvidia-").removeprefix("amd-")


@functools.cache
def model_for(name: str) -> AcceleratorModel | None:
    """The known model of a catalog or user spelling, or None (TPU slices and unknown chips)."""
    return _BY_KEY.get(_key(name))


def is_tpu(name: str) -> bool:
    """TPU slices are catalogued by slice name (``tpu-v5litepod-8``) with one "accelerator" per row."""
    return bool(_TPU_NAME.match(_key(name)))


@functools.cache
def canonical_name(name: str) -> str:
    """The canonical spelling of a catalog accelerator name (unknown names keep theirs, trimmed)."""
    model = model_for(name)
    if model is not None:
        return model.name
    key = _key(name)
    return _tpu_alias(key) if is_tpu(key) else name.strip()


def _tpu_alias(key: str) -> str:
    """Google calls v5e "v5litepod" in its SKUs; accept either."""
    return key.replace("tpu-v5e-", "tpu-v5litepod-")


def resolve(name: str, known: frozenset[str]) -> str | None:
    """The canonical name among ``known`` (the catalog's accelerators) that ``name`` denotes, if any."""
    return _lowered(known).get(canonical_name(name).lower())


@functools.lru_cache(maxsize=8)
def _lowered(known: frozenset[str]) -> dict[str, str]:
    return {k.lower(): k for k in known}


def suggestions(name: str, known: Iterable[str]) -> list[str]:
    """Close spellings for an unknown accelerator, for the error message."""
    names = sorted(set(known))
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(_key(name), list(by_lower), n=3, cutoff=0.6)
    return [by_lower[c] for c in close]


def resource_name(accelerator: str) -> str:
    """The Kubernetes extended resource a pod requests for this accelerator."""
    if is_tpu(accelerator):
        return TPU
    model = model_for(accelerator)
    return model.resource if model is not None else NVIDIA


def nominal_memory(model: AcceleratorModel, catalogued_gib: float) -> float | None:
    """The nominal memory that a catalogued figure stands for, or None if it contradicts the model."""
    for nominal in model.memory_gib:
        if abs(catalogued_gib - nominal) <= MEMORY_TOLERANCE * nominal:
            return nominal
    return None


def unsupported_reason(name: str) -> str | None:
    """Why gpuflow cannot train and serve on ``name`` (a canonical accelerator name), or None if it can."""
    if is_tpu(name):
        return "TPU slices are not provisioned as GKE TPU node pools yet (a slice name is not a machine type)"
    model = model_for(name)
    if model is None:
        return None
    if model.resource == NEURON:
        return f"{_SERVING_ENGINE} does not run on AWS Neuron devices"
    if model.resource == AMD:
        return f"{_SERVING_ENGINE} does not run on AMD GPUs, and no ROCm device plugin is installed"
    if model.compute_capability is not None and model.compute_capability < MIN_SERVING_COMPUTE_CAPABILITY:
        return (
            f"vLLM needs NVIDIA compute capability {MIN_SERVING_COMPUTE_CAPABILITY} or newer; {name} has "
            f"{model.compute_capability}"
        )
    return None
