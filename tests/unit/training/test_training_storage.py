"""The training package reads az:// as the model download does: az://ACCOUNT/CONTAINER/PATH (adlfs alone would
take ACCOUNT for the container, and the model would go where the endpoint never looks)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "include" / "training"))

from gpuflow_training import storage


def test_an_az_uri_names_the_account_and_the_path_starts_at_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    fs, path = storage.filesystem("az://gpuflowartifacts/runs/dag/abc/model")
    assert fs.account_name == "gpuflowartifacts"
    assert path == "runs/dag/abc/model"


@pytest.mark.parametrize("uri", ["az://account-only", "az:///container/path"])
def test_an_az_uri_without_account_or_container_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="az://ACCOUNT/CONTAINER/PATH"):
        storage.filesystem(uri)
