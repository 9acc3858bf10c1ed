"""``MeasuredAct``: the steady load that ``promote`` runs through a swap or an adapter load, and what it reports."""

from __future__ import annotations

import logging
import time

import pytest
from openai_double import MODEL, StartDouble

from gpuflow.serving.client import Endpoint, OpenAIClient
from gpuflow.serving.load import MeasuredAct

LOG = logging.getLogger(__name__)


def test_the_load_is_measured_before_and_during_the_act(
    start_double: StartDouble, caplog: pytest.LogCaptureFixture
) -> None:
    client = OpenAIClient(Endpoint(start_double().url))
    with caplog.at_level(logging.INFO), MeasuredAct(client, MODEL, LOG, what="the act", warm_up=5) as act:
        time.sleep(0.5)
        report = act.report(settle_s=0.2)

    assert report["swap_s"] >= 0.5
    before, during = report["load"]["before"], report["load"]["during"]
    assert before["sent"] >= 5
    assert during["sent"] > 0
    assert before["failed"] == during["failed"] == 0
    assert "steady load through the act: " in caplog.text


def test_without_a_client_the_act_is_only_timed() -> None:
    with MeasuredAct(None, MODEL, LOG, what="the act", warm_up=5) as act:
        time.sleep(0.1)
        assert act.report() == {"swap_s": pytest.approx(0.1, abs=0.1)}
