"""The trigger form's fields: replaceable defaults (with_defaults), and fields that may be left empty. The UI marks a
field whose schema refuses null as required and will not trigger while it is empty, so every such field accepts null.
"""

from __future__ import annotations

import re

import pytest

from gpuflow.core.job import JobRequest
from gpuflow.params import job_params, planning_params, with_defaults

FORM = {**planning_params(), **job_params(training_image="repo/train:1", training_command=["python", "-m", "train"])}


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


@pytest.mark.parametrize("name", sorted(name for name, param in FORM.items() if param.value in (None, "")))
def test_a_field_that_may_be_left_empty_accepts_null(name: str) -> None:
    assert "null" in FORM[name].schema["type"]
    FORM[name].resolve(None)


def test_the_untouched_form_is_a_valid_request() -> None:
    JobRequest.from_mapping({name: param.value for name, param in FORM.items()})


def test_every_field_has_a_title_and_a_section() -> None:
    assert [
        name for name, param in FORM.items() if not (param.schema.get("title") and param.schema.get("section"))
    ] == []
