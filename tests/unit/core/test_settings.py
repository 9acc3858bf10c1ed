"""GPUFLOW_* variables: unset means the default, a usable value is taken, an unusable one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuflow.core import settings
from gpuflow.core.settings import SettingsError


def test_unset_and_empty_mean_the_shipped_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (settings.CATALOG_ENV, settings.POLL_INTERVAL_ENV, settings.JANITOR_GRACE_ENV):
        monkeypatch.setenv(name, "")
    monkeypatch.delenv(settings.CLUSTERS_ENV, raising=False)
    assert settings.catalog_source() is None
    assert settings.clusters_source() is None
    assert settings.poll_interval_s() == settings.DEFAULT_POLL_INTERVAL_S
    assert settings.janitor_grace_hours() == settings.DEFAULT_JANITOR_GRACE_HOURS


def test_set_values_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.RETRAINING_ENV, "/etc/gpuflow/retraining.yaml")
    monkeypatch.setenv(settings.POLL_INTERVAL_ENV, " 0.5 ")
    monkeypatch.setenv(settings.JANITOR_GRACE_ENV, "24")
    assert settings.retraining_source() == "/etc/gpuflow/retraining.yaml"
    assert settings.poll_interval_s() == 0.5
    assert settings.janitor_grace_hours() == 24.0


@pytest.mark.parametrize("raw", ["ten", "0", "-1", "nan", "inf"])
def test_an_unusable_number_names_the_variable_the_value_and_the_fix(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(settings.POLL_INTERVAL_ENV, raw)
    with pytest.raises(SettingsError) as error:
        settings.poll_interval_s()
    assert str(error.value) == (
        f"GPUFLOW_POLL_INTERVAL_S={raw!r} is invalid: a positive number of seconds, e.g. 10; unset it for the default"
    )


def test_the_state_defaults_to_the_airflow_home_and_artifacts_to_each_clusters_bucket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run's outputs never default to the worker's disk: a pod on a cloud node cannot see it (None means
    the bucket of the cluster the run lands on)."""
    for name in (settings.STATE_URL_ENV, settings.ARTIFACTS_ENV, "AIRFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert settings.airflow_home() == Path.home() / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert settings.state_url() == f"sqlite:///{tmp_path}/gpuflow-state.db"
    assert settings.artifacts_base() is None
    monkeypatch.setenv(settings.STATE_URL_ENV, "postgresql+psycopg2://gpuflow@db/gpuflow")
    monkeypatch.setenv(settings.ARTIFACTS_ENV, "s3://bucket/gpuflow")
    assert settings.state_url() == "postgresql+psycopg2://gpuflow@db/gpuflow"
    assert settings.artifacts_base() == "s3://bucket/gpuflow"


@pytest.mark.parametrize(("raw", "on"), [("", True), ("1", True), ("On", True), ("off", False), (" 0 ", False)])
def test_the_preload_switch_is_on_unless_set_off(monkeypatch: pytest.MonkeyPatch, raw: str, on: bool) -> None:
    monkeypatch.setenv(settings.PRELOAD_ENV, raw)
    assert settings.preload() is on


def test_an_unusable_switch_names_the_variable_the_value_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.PRELOAD_ENV, "maybe")
    with pytest.raises(SettingsError) as error:
        settings.preload()
    assert str(error.value) == (
        "GPUFLOW_PRELOAD='maybe' is invalid: one of 1, true, on, 0, false, off; unset it for the default (on)"
    )
