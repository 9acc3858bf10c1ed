"""The janitor's rules: what is deleted, what is kept and why, and what deleting it saves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpuflow.core import naming
from gpuflow.core.catalog import CapacityType, Catalog
from gpuflow.core.janitor import (
    NODE_POOL,
    Found,
    RunInfo,
    RunState,
    Verdict,
    judge,
    ledger_closures,
    machine_rate,
    summarize,
    table,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
RUN = naming.run_key("gpu_train_and_serve", "manual__1")


def pool(
    run: str | None = RUN, gpus: int = 4, hourly: float | None = 8.0, extra: dict[str, str] | None = None
) -> Found:
    labels = {naming.MANAGED_LABEL: "true", **({naming.RUN_LABEL: run} if run else {}), **(extra or {})}
    return Found(NODE_POOL, "gcp", "gpuflow-usc1", f"gf-{run}", labels, gpus=gpus, hourly_usd=hourly)


def endpoint(run: str = RUN, extra: dict[str, str] | None = None) -> Found:
    labels = {naming.MANAGED_LABEL: "true", naming.RUN_LABEL: run, **(extra or {})}
    return Found("Deployment", "gcp", "gpuflow-usc1", "e2e-1234", labels)


def expiry(moment: datetime) -> dict[str, str]:
    return naming.expiry_label(moment)


def only(verdicts: list[Verdict]) -> Verdict:
    assert len({(v.delete, v.reason) for v in verdicts}) == 1, verdicts
    return verdicts[0]


def test_a_resource_without_our_managed_label_is_never_judged() -> None:
    theirs = Found(NODE_POOL, "aws", "gpuflow-use1", "team-pool", {naming.RUN_LABEL: RUN})
    assert judge([theirs], {RUN: RunInfo(RunState.FAILED)}, NOW) == []


def test_an_expiry_in_the_future_keeps_the_whole_run_even_after_it_ended() -> None:
    until = NOW + timedelta(minutes=30)
    verdicts = judge([pool(extra=expiry(until)), endpoint()], {RUN: RunInfo(RunState.SUCCESS)}, NOW)
    verdict = only(verdicts)
    assert not verdict.delete
    assert verdict.reason == "kept until 2026-11-29 12:30 UTC"


def test_an_expiry_in_the_past_deletes_even_a_running_run() -> None:
    ended = NOW - timedelta(minutes=5)
    verdict = only(
        judge([pool(extra=expiry(ended)), endpoint(extra=expiry(ended))], {RUN: RunInfo(RunState.RUNNING)}, NOW)
    )
    assert verdict.delete
    assert verdict.due_since == ended
    assert verdict.reason == "keep-time ended 2026-11-29 11:55 UTC"


@pytest.mark.parametrize("state", [RunState.SUCCESS, RunState.FAILED])
def test_resources_of_an_ended_run_are_deleted(state: RunState) -> None:
    verdict = only(judge([pool(), endpoint()], {RUN: RunInfo(state)}, NOW))
    assert verdict.delete
    assert verdict.reason == f"run {state.value}"


@pytest.mark.parametrize("state", [RunState.QUEUED, RunState.RUNNING])
def test_resources_of_a_live_run_are_kept(state: RunState) -> None:
    verdict = only(judge([pool()], {RUN: RunInfo(state)}, NOW))
    assert not verdict.delete
    assert verdict.reason == f"run {state.value}"


def test_an_unknown_run_is_kept_within_the_grace_and_deleted_after_it() -> None:
    fresh = {RUN: RunInfo(RunState.UNKNOWN, known_since=NOW - timedelta(hours=5))}
    kept = only(judge([pool()], fresh, NOW))
    assert not kept.delete
    assert "due 2026-11-29 13:00 UTC" in kept.reason
    old = {RUN: RunInfo(RunState.UNKNOWN, known_since=NOW - timedelta(hours=7))}
    deleted = only(judge([pool()], old, NOW))
    assert deleted.delete
    assert deleted.due_since == NOW - timedelta(hours=1)


def test_the_grace_is_configurable() -> None:
    runs = {RUN: RunInfo(RunState.UNKNOWN, known_since=NOW - timedelta(minutes=30))}
    assert only(judge([pool()], runs, NOW, grace=timedelta(minutes=15))).delete


def test_a_run_missing_from_the_known_runs_is_unknown_and_seen_now() -> None:
    verdict = only(judge([pool()], {}, NOW))
    assert not verdict.delete
    assert "unknown to Airflow" in verdict.reason


def test_a_managed_resource_without_a_run_label_goes_only_when_its_own_expiry_passed() -> None:
    kept = only(judge([pool(run=None)], {}, NOW))
    assert not kept.delete
    assert kept.reason == "no run label: not attributable"
    assert only(judge([pool(run=None, extra=expiry(NOW - timedelta(seconds=1)))], {}, NOW)).delete


def test_an_unreadable_expiry_is_ignored() -> None:
    verdict = only(judge([pool(extra={naming.EXPIRES_LABEL: "tomorrow"})], {RUN: RunInfo(RunState.SUCCESS)}, NOW))
    assert verdict.reason == "run success"


def test_runs_are_judged_independently() -> None:
    other = naming.run_key("gpu_train_and_serve", "manual__2")
    verdicts = judge([pool(), pool(run=other)], {RUN: RunInfo(RunState.RUNNING), other: RunInfo(RunState.FAILED)}, NOW)
    assert {(v.found.run_key, v.delete) for v in verdicts} == {(RUN, False), (other, True)}


def test_summary_counts_released_gpus_price_and_overdue_hours_where_known() -> None:
    ended = NOW - timedelta(hours=2)
    crashed = naming.run_key("gpu_train_and_serve", "crashed")
    verdicts = judge(
        [pool(extra=expiry(ended)), endpoint(extra=expiry(ended)), pool(run=crashed, gpus=8, hourly=None)],
        {RUN: RunInfo(RunState.SUCCESS), crashed: RunInfo(RunState.FAILED)},
        NOW,
    )
    summary = summarize(verdicts, NOW)
    assert summary.reclaimed == 3
    assert summary.kept == 0
    assert summary.gpus_released == 12
    assert summary.usd_per_hour_stopped == 8.0
    assert summary.unpriced_pools == 1
    assert summary.overdue_gpu_hours == pytest.approx(8.0)  # 4 GPUs x 2 h past the expiry; the crash: unknown


def test_machine_rate_reads_accelerators_and_the_cheapest_price_in_the_region(catalog: Catalog) -> None:
    offer = next(o for o in catalog.offers if o.cloud == "gcp" and o.on_demand_usd is not None)
    count, price = machine_rate(catalog.offers, "gcp", offer.region, offer.instance_type, CapacityType.ON_DEMAND)
    assert count == offer.accelerator_count
    assert price is not None
    assert price <= offer.on_demand_usd  # type: ignore[operator]
    assert machine_rate(catalog.offers, "gcp", offer.region, "no-such-machine", CapacityType.SPOT) == (0, None)
    assert machine_rate(catalog.offers, "gcp", "mars-1", offer.instance_type, CapacityType.ON_DEMAND)[1] is None


def test_table_lists_deleted_first_with_reasons() -> None:
    verdicts = judge([pool(), endpoint()], {RUN: RunInfo(RunState.FAILED)}, NOW)
    verdicts += judge([pool(run="feedfacecafebeef")], {"feedfacecafebeef": RunInfo(RunState.RUNNING)}, NOW)
    lines = table(verdicts).splitlines()
    assert lines[0].split() == ["action", "kind", "where", "name", "GPUs", "reason"]
    assert [line.split()[0] for line in lines[1:]] == ["deleted", "deleted", "kept"]
    assert lines[-1].endswith("run running")
    assert table([]) == "nothing labelled as gpuflow's was found"


def test_an_open_entry_of_a_pool_the_sweep_deleted_closes_with_the_verdicts_reason() -> None:
    deleted = pool()
    verdicts = judge([deleted], {RUN: RunInfo(RunState.FAILED)}, NOW)
    path = f"gcp/gpuflow-usc1/{deleted.name}"
    closures = ledger_closures([path], verdicts, [path], {"gcp/gpuflow-usc1": frozenset({path})})
    assert closures == {path: "janitor: run failed"}


def test_an_open_entry_of_a_pool_gone_from_a_clean_listing_closes_and_one_still_listed_stays_open() -> None:
    gone, deleting = "gcp/gpuflow-usc1/gf-gone", "gcp/gpuflow-usc1/gf-deleting"
    closures = ledger_closures([gone, deleting], [], [], {"gcp/gpuflow-usc1": frozenset({deleting})})
    assert list(closures) == [gone]
    assert closures[gone].startswith("janitor: found gone")


def test_an_open_entry_on_a_cluster_that_could_not_be_listed_stays_open() -> None:
    assert ledger_closures(["aws/gpuflow-use1/gf-x"], [], [], {"gcp/gpuflow-usc1": frozenset()}) == {}


FRONT = naming.run_key("gpu_train_and_serve", "manual__2")  # the run whose revision the endpoint serves


def front_service(run: str = FRONT) -> Found:
    labels = {naming.MANAGED_LABEL: "true", naming.RUN_LABEL: run, naming.ENDPOINT_LABEL: "chat"}
    return Found("Service", "gcp", "gpuflow-usc1", "chat", labels)


def revision(run: str) -> list[Found]:
    return [pool(run, extra={naming.ENDPOINT_LABEL: "chat"}), endpoint(run, extra={naming.ENDPOINT_LABEL: "chat"})]


def test_the_live_revision_of_a_named_endpoint_is_kept_after_its_run_ended() -> None:
    verdicts = judge([front_service(), *revision(FRONT)], {FRONT: RunInfo(RunState.SUCCESS)}, NOW)
    verdict = only(verdicts)
    assert not verdict.delete
    assert verdict.reason == "live revision of endpoint chat"


def test_a_retired_revision_goes_once_the_promoting_run_ended_and_not_while_it_drains() -> None:
    found = [front_service(), *revision(RUN)]
    draining = judge(found, {RUN: RunInfo(RunState.SUCCESS), FRONT: RunInfo(RunState.RUNNING)}, NOW)
    assert [v.delete for v in draining if v.found.run_key == RUN] == [False, False]
    assert draining[-1].reason == f"endpoint chat is being promoted to run {FRONT}"
    done = judge(found, {RUN: RunInfo(RunState.SUCCESS), FRONT: RunInfo(RunState.SUCCESS)}, NOW)
    retired = [v for v in done if v.found.run_key == RUN]
    assert [v.delete for v in retired] == [True, True]
    assert retired[0].reason == f"retired revision of endpoint chat (run {FRONT} serves it)"


def test_a_named_endpoint_whose_front_service_is_not_seen_is_kept() -> None:
    verdict = only(judge(revision(RUN), {RUN: RunInfo(RunState.SUCCESS)}, NOW))
    assert not verdict.delete
    assert "gpu_endpoint_delete" in verdict.reason
