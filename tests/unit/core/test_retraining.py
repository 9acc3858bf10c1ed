"""The retraining config file: the shipped one loads; every bad value is refused naming file, field and value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuflow.core.request import CapacityPreference
from gpuflow.core.retraining import (
    NOT_IN_FORM,
    PROJECT_ROOT,
    RetrainingConfigError,
    default_retraining_path,
    load_retraining_config,
    parse_retraining_config,
    training_data_uri,
)

SHIPPED: dict[str, Any] = yaml.safe_load(default_retraining_path().read_text())


def test_shipped_config_loads_with_its_schedule_asset_and_job() -> None:
    config = load_retraining_config()
    assert config.source == str(default_retraining_path())
    assert (config.cron, config.timezone) == (SHIPPED["cron"], SHIPPED["timezone"])
    assert config.training_data_uri == SHIPPED["training_data_asset"] == training_data_uri()
    assert config.job.plan.accelerator == SHIPPED["job"]["accelerator"]
    assert config.job.plan.capacity is CapacityPreference(SHIPPED["job"]["capacity"])
    assert config.job.training_command == tuple(SHIPPED["job"]["training_command"])


def test_a_relative_dataset_path_is_resolved_against_the_project_root() -> None:
    dataset = load_retraining_config().job.dataset_uri
    assert dataset == str(PROJECT_ROOT / SHIPPED["job"]["dataset_uri"])
    assert Path(dataset).is_file()


def test_uris_and_absolute_paths_are_kept_as_given() -> None:
    for uri in ("s3://bucket/corpus.txt", "/data/corpus.txt", "file:///data/corpus.txt"):
        document = {**SHIPPED, "job": {**SHIPPED["job"], "dataset_uri": uri}}
        assert parse_retraining_config(document, source="r.yaml").job.dataset_uri == uri


def test_conf_is_the_whole_job_as_plain_json_without_fields_the_form_lacks() -> None:
    conf = load_retraining_config().conf
    assert json.loads(json.dumps(conf)) == conf
    assert conf["training_command"] == SHIPPED["job"]["training_command"]
    assert conf["clouds"] == SHIPPED["job"]["clouds"]
    assert conf["keep_endpoint_minutes"] == 0  # a field the file leaves out has the request's default
    assert not set(NOT_IN_FORM) & set(conf)


def with_setting(key: str, value: Any) -> dict[str, Any]:
    if key.startswith("job."):
        return {**SHIPPED, "job": {**SHIPPED["job"], key.removeprefix("job."): value}}
    return {**SHIPPED, key: value}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cron", "61 * * * *", "cron='61 * * * *' is invalid: a 5-field cron expression"),
        ("cron", None, "cron=None is invalid"),
        ("timezone", "Mars/Olympus", "timezone='Mars/Olympus' is invalid: an IANA time zone"),
        ("training_data_asset", "airflow://data", "training_data_asset='airflow://data' is invalid"),
        ("training_data_asset", "s3://bucket/corpus/", "training_data_asset='s3://bucket/corpus/' is invalid"),
        ("training_data_asset", "corpus.txt", "training_data_asset='corpus.txt' is invalid: a URI"),
        ("job", ["L4"], "job=['L4'] is invalid: a mapping"),
        ("job.accelerator", "", "job.accelerator='' is invalid"),
        ("job.count", 99, "job.count=99 is invalid: an integer from 1 to 16"),
        ("job.capacity", "cheapest", "job.capacity='cheapest' is invalid: one of on-demand, spot"),
        ("job.clouds", ["aws", "oci"], "job.clouds=['aws', 'oci'] is invalid"),
        ("job.training_command", [], "job.training_command=[] is invalid: a non-empty list"),
        ("job.training_image", "Not An Image", "job.training_image='Not An Image' is invalid"),
        ("job.accelerater", "L4", "job.accelerater='L4' is invalid: not a job field"),
        ("job.max_fallbacks", 3, "job.max_fallbacks=3 is invalid: not settable here"),
        ("schedule", "daily", "schedule is not a setting; the settings are cron, timezone"),
    ],
)
def test_a_bad_value_names_the_file_the_field_and_the_value(key: str, value: Any, message: str) -> None:
    with pytest.raises(RetrainingConfigError, match=re.escape(f"retraining.yaml: {message}")):
        parse_retraining_config(with_setting(key, value), source="include/config/retraining.yaml")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RetrainingConfigError, match=re.escape(f"{tmp_path / 'nope.yaml'} cannot be read")):
        load_retraining_config(tmp_path / "nope.yaml")


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "retraining.yaml"
    path.write_text("- cron\n")
    with pytest.raises(RetrainingConfigError, match="expected a mapping with keys cron, timezone"):
        load_retraining_config(path)
