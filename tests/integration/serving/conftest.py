"""The OpenAI test double, served in a thread of the test process.

Sibling modules are imported by their bare names (pytest puts this directory on sys.path): another installed
distribution ships a regular ``tests.integration`` package that shadows ours.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from openai_double import MODEL, Double, StartDouble

from gpuflow.serving.client import Endpoint, OpenAIClient


@pytest.fixture
def start_double() -> Iterator[StartDouble]:
    """Start doubles on free ports; each is shut down after the test."""
    started: list[Double] = []

    def start(served_model_name: str = MODEL, metrics: bool = True) -> Double:
        double = Double(("127.0.0.1", 0), served_model_name, metrics)
        threading.Thread(target=double.serve_forever, args=(0.05,), daemon=True).start()
        started.append(double)
        return double

    yield start
    for double in started:
        double.shutdown()
        double.server_close()


@pytest.fixture
def client(start_double: StartDouble) -> Iterator[OpenAIClient]:
    with OpenAIClient(Endpoint(start_double().url)) as opened:
        yield opened
