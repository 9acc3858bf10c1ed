from __future__ import annotations

import pytest

from gpuflow.core import accelerators


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("h100", "H100"),
        ("a100-80gb", "A100-80GB"),
        ("A100_80GB", "A100-80GB"),
        ("nvidia-a100-80gb", "A100-80GB"),
        ("a100-40gb", "A100"),
        ("trn2", "Trainium2"),
        ("L40s", "L40S"),
        ("tpu-v5e-8", "tpu-v5litepod-8"),
        ("TPU-V5P-8", "tpu-v5p-8"),
    ],
)
def test_spellings_resolve_to_the_catalog_name(spelling: str, canonical: str) -> None:
    known = frozenset({"H100", "A100-80GB", "A100", "Trainium2", "L40S", "tpu-v5litepod-8", "tpu-v5p-8"})
    assert accelerators.resolve(spelling, known) == canonical


def test_unknown_accelerator_resolves_to_none_and_gets_suggestions() -> None:
    known = frozenset({"H100", "H200", "A100"})
    assert accelerators.resolve("H10", known) is None
    assert "H100" in accelerators.suggestions("H10", known)


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("H100", "nvidia.com/gpu"),
        ("MI300X", "amd.com/gpu"),
        ("Trainium2", "aws.amazon.com/neuron"),
        ("tpu-v5p-8", "google.com/tpu"),
    ],
)
def test_resource_name_follows_the_vendor(name: str, resource: str) -> None:
    assert accelerators.resource_name(name) == resource


def test_gib_figures_of_a_gb_rated_chip_map_to_its_nominal_memory() -> None:
    l4 = accelerators.model_for("L4")
    assert l4 is not None
    assert accelerators.nominal_memory(l4, 22.35) == 24
    trn2 = accelerators.model_for("Trainium2")
    assert trn2 is not None
    assert accelerators.nominal_memory(trn2, 512) is None
