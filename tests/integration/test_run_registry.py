"""The run registry turns a run label back into its run, and remembers when an unknown label was first seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpuflow.core.naming import run_key
from gpuflow.state.runs import RegisteredRun, RunRegistry

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def registry(tmp_path: Path) -> RunRegistry:
    return RunRegistry(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_registered_run_is_found_by_its_label(tmp_path: Path) -> None:
    key = registry(tmp_path).register("gpu_train_and_serve", "manual__1", now=NOW)
    assert key == run_key("gpu_train_and_serve", "manual__1")
    found = registry(tmp_path).known([key], now=NOW + timedelta(hours=1))
    assert found == {key: RegisteredRun(key, "gpu_train_and_serve", "manual__1", NOW)}


def test_registering_twice_keeps_the_first_time(tmp_path: Path) -> None:
    store = registry(tmp_path)
    key = store.register("dag", "run", now=NOW)
    store.register("dag", "run", now=NOW + timedelta(hours=2))
    assert store.known([key], now=NOW)[key].known_since == NOW


def test_an_unknown_label_is_sighted_once_and_keeps_its_first_sighting(tmp_path: Path) -> None:
    store = registry(tmp_path)
    assert store.known(["feedfacecafebeef"], now=NOW)["feedfacecafebeef"] == RegisteredRun(
        "feedfacecafebeef", None, None, NOW
    )
    later = store.known(["feedfacecafebeef"], now=NOW + timedelta(hours=3))
    assert later["feedfacecafebeef"].known_since == NOW


def test_a_run_registering_after_a_sighting_fills_in_the_run(tmp_path: Path) -> None:
    store = registry(tmp_path)
    key = run_key("dag", "run")
    store.known([key], now=NOW)
    store.register("dag", "run", now=NOW + timedelta(minutes=5))
    assert store.known([key], now=NOW)[key] == RegisteredRun(key, "dag", "run", NOW)


def test_no_labels_asks_nothing(tmp_path: Path) -> None:
    assert registry(tmp_path).known([], now=NOW) == {}
