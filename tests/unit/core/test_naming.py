from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gpuflow.core import naming

RUN = "manual__2026-11-29T10:17:31.123456+00:00"
DAG = "gpu_train_and_serve_with_a_rather_long_name_for_a_dag_id"
RULES = {
    "aws": re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$"),
    "gcp": re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"),
    "azure": re.compile(r"^[a-z][a-z0-9]{0,11}$"),
}


@pytest.mark.parametrize("cloud", sorted(RULES))
def test_pool_names_fit_each_clouds_rule(cloud: str) -> None:
    name = naming.pool_name(cloud, DAG, RUN, "gcp/us-central1-a/a3-highgpu-8g/spot")
    assert RULES[cloud].match(name), name


def test_pool_names_are_stable_across_retries_and_differ_per_offer() -> None:
    first = naming.pool_name("gcp", DAG, RUN, "offer-a")
    assert naming.pool_name("gcp", DAG, RUN, "offer-a") == first
    assert naming.pool_name("gcp", DAG, RUN, "offer-b") != first
    assert naming.pool_name("gcp", DAG, "other-run", "offer-a") != first


@pytest.mark.parametrize("text", [RUN, "x" * 200, "Gpu_Train", "plain-value", "---"])
def test_label_values_are_valid_kubernetes_label_values(text: str) -> None:
    value = naming.label_value(text)
    assert re.match(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$", value), value


def test_valid_label_values_are_kept_verbatim() -> None:
    assert naming.label_value("gpu-plan") == "gpu-plan"


def test_ownership_labels_identify_the_run_and_expiry() -> None:
    labels = naming.ownership_labels(DAG, RUN, expires_at_epoch=1_800_000_000)
    assert labels[naming.MANAGED_LABEL] == "true"
    assert labels[naming.RUN_LABEL] == naming.run_key(DAG, RUN)
    assert labels[naming.EXPIRES_LABEL] == "1800000000"
    assert all(len(v) <= 63 for v in labels.values())


def test_expiry_label_round_trips_in_whole_utc_seconds() -> None:
    until = datetime(2026, 11, 29, 12, 30, 15, 900_000, tzinfo=UTC)
    label = naming.expiry_label(until)
    assert label == {naming.EXPIRES_LABEL: str(int(until.timestamp()))}
    assert naming.expires_at(label) == until.replace(microsecond=0)


def test_a_missing_or_unreadable_expiry_is_none() -> None:
    assert naming.expires_at({}) is None
    assert naming.expires_at({naming.EXPIRES_LABEL: "soon"}) is None
