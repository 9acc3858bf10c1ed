"""When ``gpu_scheduled_retraining`` runs and what it runs: the retraining config file, validated.

The file (``include/config/retraining.yaml``) holds the cron and its timezone, the URI of the training-data
asset whose updates also start a run, and the job: the same fields as the trigger form, validated by
``JobRequest`` exactly as a run's first task validates them. Every error names the file, the field, the
value and what would be accepted, so a bad edit fails the DAG's import with a message that says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from gpuflow.core.errors import GpuflowError, RequestError
from gpuflow.core.job import JobRequest
from gpuflow.core.settings import retraining_source

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TOP_LEVEL = ("cron", "timezone", "training_data_asset", "job")
# Request fields the trigger form has no field for: a scheduled run takes its conf from the form's defaults,
# so a value set here would silently not reach the run.
NOT_IN_FORM = ("max_fallbacks", "blocked")
# Paths to resolve against the project root, so one file serves a checkout and the containers alike.
PATH_FIELDS = ("dataset_uri", "output_uri")
_ASSET_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://[^\s/]+\S*$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
# libyaml's safe loader where PyYAML has it: about 20x faster than the pure-Python one, and this runs per parse.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RetrainingConfigError(GpuflowError):
    """The retraining config file is missing, unreadable or wrong; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class RetrainingConfig:
    """A validated retraining config; ``conf`` is the job as a flat run conf (the trigger form's defaults)."""

    source: str
    cron: str
    timezone: str
    training_data_uri: str
    job: JobRequest

    @property
    def conf(self) -> dict[str, Any]:
        plan = {k: v for k, v in self.job.plan.to_dict().items() if k not in NOT_IN_FORM}
        job = {k: list(v) if isinstance(v, tuple) else v for k, v in self.job.fields().items()}
        return {**plan, **job}


def default_retraining_path() -> Path:
    """``GPUFLOW_RETRAINING_CONFIG`` where set, else the shipped ``include/config/retraining.yaml``."""
    return Path(retraining_source() or PROJECT_ROOT / "include" / "config" / "retraining.yaml")


def load_retraining_config(path: str | Path | None = None) -> RetrainingConfig:
    """Read and validate the config file (a small local file: cheap enough for DAG parse time)."""
    location = Path(path or default_retraining_path())
    try:
        document = yaml.load(location.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise RetrainingConfigError(f"retraining config {location} cannot be read: {exc}") from exc
    return parse_retraining_config(document, source=str(location))


def training_data_uri(path: str | Path | None = None) -> str:
    """The URI of the asset whose updates start a retraining run (post an asset event for it to retrain now)."""
    return load_retraining_config(path).training_data_uri


def parse_retraining_config(document: Any, *, source: str) -> RetrainingConfig:
    if not isinstance(document, Mapping):
        raise RetrainingConfigError(f"{source}: expected a mapping with keys {', '.join(TOP_LEVEL)}")
    unknown = sorted(set(document) - set(TOP_LEVEL))
    if unknown:
        raise RetrainingConfigError(f"{source}: {unknown[0]} is not a setting; the settings are {', '.join(TOP_LEVEL)}")
    return RetrainingConfig(
        source=source,
        cron=_cron(document.get("cron"), source),
        timezone=_timezone(document.get("timezone", "UTC"), source),
        training_data_uri=_asset_uri(document.get("training_data_asset"), source),
        job=_job(document.get("job"), source),
    )


def _cron(value: Any, source: str) -> str:
    if not isinstance(value, str) or not croniter.is_valid(value):
        raise _invalid(source, "cron", value, "a 5-field cron expression such as '0 3 * * 1' (Mondays 03:00)")
    return value


def _timezone(value: Any, source: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise _invalid(source, "timezone", value, "an IANA time zone such as UTC or Europe/Paris") from None
    return str(value)


def _asset_uri(value: Any, source: str) -> str:
    match = _ASSET_URI.match(value) if isinstance(value, str) else None
    if not match or match["scheme"] == "airflow" or value.endswith("/"):
        raise _invalid(
            source,
            "training_data_asset",
            value,
            "a URI such as s3://bucket/corpus (no trailing '/'; the scheme 'airflow' is reserved)",
        )
    return str(value)


def _job(value: Any, source: str) -> JobRequest:
    if not isinstance(value, Mapping):
        raise _invalid(source, "job", value, "a mapping of the trigger form's fields (accelerator, count, ...)")
    for name in NOT_IN_FORM:
        if name in value:
            why = "not settable here: a scheduled run's conf is the trigger form's defaults, and the form lacks it"
            raise _invalid(source, f"job.{name}", value[name], why)
    given = {k: _resolved(v) if k in PATH_FIELDS else v for k, v in value.items()}
    try:
        return JobRequest.from_mapping(given)
    except RequestError as exc:
        raise _invalid(source, f"job.{exc.field}", exc.value, exc.expected) from None


def _resolved(value: Any) -> Any:
    """A relative path is relative to the project root (the folder holding include/)."""
    if not isinstance(value, str) or not value or _SCHEME.match(value) or value.startswith("/"):
        return value
    return str(PROJECT_ROOT / value)


def _invalid(source: str, field: str, value: Any, expected: str) -> RetrainingConfigError:
    return RetrainingConfigError(f"{source}: {field}={value!r} is invalid: {expected}")
