"""with_defaults: the trigger form with a config file's defaults, the fields' schemas unchanged."""

from __future__ import annotations

import re

import pytest

from gpuflow.params import job_params, planning_params, with_defaults


def test_defaults_are_replaced_and_each_field_keeps_its_schema() -> None:
    form = planning_params()
    changed = with_defaults(form, {"accelerator": "L4", "count": 2}, source="r.yaml")
    assert (changed["accelerator"].value, changed["count"].value) == ("L4", 2)
    assert changed["count"].schema == form["count"].schema
    assert changed["capacity"] is form["capacity"]
    assert form["accelerator"].value == "H100"  # the given form is left alone


def test_a_default_for_a_field_the_form_lacks_names_the_file_and_the_field() -> None:
    form = job_params(training_image="python:3.11-slim", training_command=["python"])
    with pytest.raises(ValueError, match=re.escape("r.yaml: max_fallbacks=3 is not a field of the trigger form")):
        with_defaults(form, {"max_fallbacks": 3}, source="r.yaml")
