"""Every registered cloud has a complete ``CloudTraits`` record, so a missing fact fails here, not after a
pool was bought (a KeyError in a node label table during training, say)."""

from __future__ import annotations

import importlib
import re

import pytest

from gpuflow.core import accelerators, naming
from gpuflow.core.clouds import CLOUD_TRAITS, CLOUDS, CloudTraits, traits
from gpuflow.core.errors import RequestError

RESOURCES = {accelerators.NVIDIA, accelerators.AMD, accelerators.NEURON, accelerators.TPU}
# A Kubernetes label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def test_clouds_lists_the_registered_records_in_order() -> None:
    assert CLOUDS == ("aws", "gcp", "azure")
    assert tuple(CLOUD_TRAITS) == CLOUDS


@pytest.mark.parametrize("facts", CLOUD_TRAITS.values(), ids=CLOUDS)
def test_every_record_is_complete(facts: CloudTraits) -> None:
    assert CLOUD_TRAITS[facts.name] is facts
    assert facts.kubernetes
    assert facts.required_settings
    assert all(isinstance(key, str) and key for key in facts.required_settings)
    assert LABEL_KEY.match(facts.pool_label)
    assert facts.accelerator_resources
    assert accelerators.NVIDIA in facts.accelerator_resources
    assert facts.accelerator_resources <= RESOURCES
    if facts.accelerator_label is not None:
        assert LABEL_KEY.match(facts.accelerator_label)
        assert facts.accelerator_label_values
    if facts.spot_taint is not None:
        key, value = facts.spot_taint
        assert LABEL_KEY.match(key)
        assert value
    assert 60 <= facts.typical_provision_s <= 3600  # a pool takes minutes to come up, never seconds or hours


@pytest.mark.parametrize("facts", CLOUD_TRAITS.values(), ids=CLOUDS)
def test_its_storage_can_hold_a_model_the_endpoint_downloads(facts: CloudTraits) -> None:
    servable = [scheme for scheme, remote in facts.storage_schemes.items() if remote]
    assert servable
    assert all(re.match(r"^:[a-z0-9]+:$", remote) for remote in facts.storage_schemes.values() if remote)
    assert facts.model_uri_shape.split("://")[0] in servable
    assert facts.rclone_env


def test_no_two_clouds_claim_a_storage_scheme() -> None:
    schemes = [scheme for facts in CLOUD_TRAITS.values() for scheme in facts.storage_schemes]
    assert len(schemes) == len(set(schemes))


@pytest.mark.parametrize("facts", CLOUD_TRAITS.values(), ids=CLOUDS)
def test_the_backend_path_names_an_importable_class(facts: CloudTraits) -> None:
    module, _, name = facts.backend.partition(":")
    assert module.startswith("gpuflow.clouds.")
    assert isinstance(getattr(importlib.import_module(module), name), type)


@pytest.mark.parametrize("facts", CLOUD_TRAITS.values(), ids=CLOUDS)
def test_the_name_rule_yields_valid_names_within_its_length(facts: CloudTraits) -> None:
    rule = facts.name_rule
    assert rule.max_length >= len(naming.PREFIX) + 10
    name = naming.pool_name(facts.name, "a-very-long-dag-id-" * 5, "manual__2025-01-01T00:00:00+00:00", "offer")
    assert len(name) <= rule.max_length
    assert re.match(r"^[a-z][a-z0-9-]*[a-z0-9]$", name)
    assert ("-" in name) == rule.hyphens


@pytest.mark.parametrize("facts", CLOUD_TRAITS.values(), ids=CLOUDS)
def test_the_zone_reach_reads_only_required_settings(facts: CloudTraits) -> None:
    settings = {key: "region-1" if key == "location" else ["zone-a"] for key in facts.required_settings}
    zones = facts.reachable_zones("region-1", settings)
    assert zones is None or isinstance(zones, frozenset)


def test_an_unknown_cloud_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(RequestError) as error:
        traits("oci")
    assert error.value.field == "cloud"
    assert str(error.value).startswith("cloud='oci' is invalid: one of aws, gcp, azure (the clouds in ")


@pytest.mark.parametrize(
    ("cloud", "instance_type", "accelerator", "family"),
    [
        ("aws", "p4d.24xlarge", "A100", "P"),
        ("aws", "p5.48xlarge", "H100", "P"),
        ("aws", "g6.xlarge", "L4", "G and VT"),
        ("aws", "inf2.xlarge", "Inferentia2", "Inf"),
        ("gcp", "g2-standard-4", "L4", "L4"),
        ("gcp", "n1-standard-8", "T4", "T4"),
        ("azure", "Standard_NC4as_T4_v3", "T4", "NCas_T4_v3"),
        ("azure", "Standard_NC64as_T4_v3", "T4", "NCas_T4_v3"),
        ("azure", "Standard_NC24ads_A100_v4", "A100-80GB", "NCads_A100_v4"),
    ],
)
def test_quota_families_group_what_one_quota_counts(
    cloud: str, instance_type: str, accelerator: str, family: str
) -> None:
    assert traits(cloud).quota_family(instance_type, accelerator) == family
