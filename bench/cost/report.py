"""The figures of a run: per policy, the mean cost, the deadlines missed, the ratio to the optimum and the savings
against the naive policy; printed as a table, written as JSON and drawn as a chart.

- ``mean_cost_usd``: over every job, a failed run counting what it spent before it failed;
- ``deadline_miss_rate``: the share of jobs not finished by their deadline, late or failed;
- ``cost_vs_optimum`` and ``savings_vs_naive`` (1 - cost / naive cost): summed over the jobs the policy finished,
  on time or late, against the optimum's and the naive policy's cost of the same jobs;
- ``on_demand_share``: the part of the policy's spend (every job) that bought on-demand capacity;
- ``preemptions`` (pools lost after they were ready) and ``recoveries`` (training resumed after one): totals.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.cost.model import Outcome
from bench.cost.run import OPTIMUM, JobResult

NAIVE = "naive"
FACTOR_BANDS = ((1.1, 1.5), (1.5, 2.0), (2.0, 3.0))


@dataclass(frozen=True)
class Summary:
    mean_cost_usd: float
    deadline_miss_rate: float
    cost_vs_optimum: float
    savings_vs_naive: float
    on_demand_share: float | None  # None for the optimum, whose dynamic programme keeps only the total
    preemptions: int
    recoveries: int
    finished: int
    late: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def summarize(results: Sequence[JobResult]) -> dict[str, Summary]:
    names = list(results[0].outcomes)
    summaries = {name: _summary([(r, r.outcomes[name]) for r in results]) for name in names}
    optimum = [(r, Outcome(r.optimum_usd, r.job.deadline, 0, 0)) for r in results]
    return {**summaries, OPTIMUM: replace(_summary(optimum), on_demand_share=None)}


def _summary(runs: Sequence[tuple[JobResult, Outcome]]) -> Summary:
    finished = [(r, o) for r, o in runs if o.finished_at is not None]
    spent = sum(o.cost_usd for _, o in finished)
    return Summary(
        mean_cost_usd=statistics.mean(o.cost_usd for _, o in runs),
        deadline_miss_rate=sum(not o.on_time(r.job) for r, o in runs) / len(runs),
        cost_vs_optimum=spent / sum(r.optimum_usd for r, _ in finished),
        savings_vs_naive=1 - spent / sum(r.outcomes[NAIVE].cost_usd for r, _ in finished),
        on_demand_share=sum(o.on_demand_usd for _, o in runs) / sum(o.cost_usd for _, o in runs),
        preemptions=sum(o.preemptions for _, o in runs),
        recoveries=sum(o.recoveries for _, o in runs),
        finished=len(finished),
        late=sum(not o.on_time(r.job) for r, o in finished),
        failed=len(runs) - len(finished),
    )


def table(summaries: dict[str, Summary]) -> str:
    header = (
        f"{'policy':17} {'mean $/job':>10} {'missed':>7} {'vs optimum':>10} {'vs naive':>9} {'on-demand':>9} "
        f"{'preempt':>8} {'recov':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, s in summaries.items():
        lines.append(
            f"{name:17} {s.mean_cost_usd:10.2f} {s.deadline_miss_rate:7.1%} {s.cost_vs_optimum:9.2f}x "
            f"{s.savings_vs_naive:9.1%} {_share(s.on_demand_share):>9} {s.preemptions:8d} {s.recoveries:6d}"
        )
    return "\n".join(lines)


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def by_deadline(results: Sequence[JobResult]) -> dict[str, dict[str, float]]:
    """Savings against naive per band of deadline factor (deadline / work), for the chart and the JSON."""
    bands: dict[str, dict[str, float]] = {}
    for low, high in FACTOR_BANDS:
        inside = [r for r in results if low <= r.job.deadline / r.job.work < high]
        if inside:
            bands[f"{low:g}-{high:g}x"] = summarize_savings(inside)
    return bands


def summarize_savings(results: Sequence[JobResult]) -> dict[str, float]:
    return {name: round(s.savings_vs_naive, 4) for name, s in summarize(results).items()}


def chart(summaries: dict[str, Summary], bands: dict[str, dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(summaries)
    fig, (costs, savings) = plt.subplots(1, 2, figsize=(13, 4.8))
    bars = costs.bar(names, [summaries[n].mean_cost_usd for n in names], color="#4c72b0")
    for bar, name in zip(bars, names, strict=True):
        costs.annotate(
            f"{summaries[name].deadline_miss_rate:.1%} missed",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    costs.set_ylabel("mean cost per job (USD)")
    costs.tick_params(axis="x", rotation=30)
    compared = [name for name in names if name != NAIVE]  # naive saves nothing against itself
    width = 0.8 / len(compared)
    for offset, name in enumerate(compared):
        xs = [i + offset * width for i in range(len(bands))]
        savings.bar(xs, [100 * band[name] for band in bands.values()], width, label=name)
    savings.set_xticks([i + 0.4 - width / 2 for i in range(len(bands))], list(bands))
    savings.set_xlabel("deadline / work")
    savings.set_ylabel("savings against naive (%)")
    savings.set_ylim(0, 100)
    savings.legend(fontsize=8, loc="upper center", ncol=3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
